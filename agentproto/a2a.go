package agentproto

import (
	"fmt"
	"strings"
)

// a2aAction maps an A2A method, protocol 0.3's slash names or 1.0's
// PascalCase ones (docs/a2a.md cites both lists), to the action on agent
// service s. A method of neither list is a2a:S/<method>, which only a rule
// naming it (or a2a:S/*) allows.
func a2aAction(s, method string) string {
	switch method {
	case "message/send", "message/stream", "SendMessage", "SendStreamingMessage":
		return "send:" + s
	case "tasks/get", "GetTask":
		return "task:" + s + "/get"
	case "tasks/list", "ListTasks":
		return "task:" + s + "/list"
	case "tasks/cancel", "CancelTask":
		return "task:" + s + "/cancel"
	case "tasks/resubscribe", "SubscribeToTask":
		return "task:" + s + "/subscribe"
	case "SetTaskPushNotificationConfig", "CreateTaskPushNotificationConfig", "GetTaskPushNotificationConfig",
		"ListTaskPushNotificationConfig", "ListTaskPushNotificationConfigs", "DeleteTaskPushNotificationConfig":
		return "configure:" + s + "/push"
	case "agent/getAuthenticatedExtendedCard", "GetExtendedAgentCard":
		return "connect:" + s
	}
	if strings.HasPrefix(method, "tasks/pushNotificationConfig/") {
		return "configure:" + s + "/push"
	}
	return "a2a:" + s + "/" + method
}

// ParseA2A reads an A2A JSON-RPC request body sent to agent service, as
// strictly as ParseMCP, and picks out the task and context ids where the
// request names them: params.message.taskId and .contextId for a message,
// params.id (or params.taskId) for the task and push-configuration
// methods. An id that is present must be a string.
func ParseA2A(service string, body []byte) (Call, error) {
	if err := checkToken("service name", service); err != nil {
		return Call{}, err
	}
	var s scanner
	r, err := parseRequest(&s, body)
	if err != nil {
		return Call{}, err
	}
	params, message := s.params.all(), s.message.all()
	c := Call{Protocol: A2A, Service: service, Method: r.method, ID: r.id, Notification: r.notification,
		Action: a2aAction(service, r.method), RawParams: r.rawParams}
	if _, present := lookup(params, "message"); present {
		if !r.hasMessage {
			return Call{}, fmt.Errorf("%w: params.message must be an object", ErrBadRequest)
		}
		if err := checkSpelling(message, "params.message.", "taskId", "contextId"); err != nil {
			return Call{}, err
		}
		if c.TaskID, err = a2aID(message, "message.", "taskId"); err != nil {
			return Call{}, err
		}
		if c.ContextID, err = a2aID(message, "message.", "contextId"); err != nil {
			return Call{}, err
		}
	}
	if c.TaskID == "" && (strings.HasPrefix(c.Action, "task:") || strings.HasPrefix(c.Action, "configure:")) {
		for _, key := range []string{"id", "taskId"} {
			id, err := a2aID(params, "", key)
			if err != nil {
				return Call{}, err
			}
			if id != "" {
				c.TaskID = id
				break
			}
		}
	}
	return c, nil
}

func a2aID(m []member, prefix, key string) (string, error) {
	v, present, err := stringParam(m, key)
	switch {
	case err != nil:
		return "", fmt.Errorf("%w: params.%s%s must be a string", ErrBadRequest, prefix, key)
	case !present:
		return "", nil
	}
	if err := checkToken("params."+prefix+key, v); err != nil {
		return "", err
	}
	return v, nil
}
