package wasmhost

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero/api"
)

// Action is what a stream callback returned: Continue (0) or Pause (1),
// as proxy-wasm's types.Action.
type Action uint32

// The actions.
const (
	Continue Action = 0
	Pause    Action = 1
)

// Plugin is one plugin configuration on a VM: its root context.
type Plugin struct {
	vm         *VM
	id         uint32
	config     []byte
	props      map[string][]byte
	tickPeriod uint32
	closing    bool // proxy_on_done answered false: proxy_done will end it
}

// NewPlugin makes a root context and configures it (proxy_on_configure)
// with config; ok is what the guest answered.
func (v *VM) NewPlugin(config []byte) (p *Plugin, ok bool, err error) {
	p = &Plugin{vm: v, id: v.newID(), config: config, props: map[string][]byte{}}
	v.plugins[p.id] = p
	if _, err := v.call(p.id, v.g.contextCreate, uint64(p.id), 0); err != nil {
		return nil, false, err
	}
	res, err := v.call(p.id, v.g.configure, uint64(p.id), uint64(len(config)))
	if err != nil {
		return nil, false, err
	}
	return p, res != 0, nil
}

// ID is the plugin's root context id.
func (p *Plugin) ID() uint32 { return p.id }

// SetProperty sets a property every stream of the plugin reads unless the
// stream sets its own.
func (p *Plugin) SetProperty(path []string, value []byte) {
	p.props[strings.Join(path, "\x00")] = slices.Clone(value)
}

// TickPeriod is the period the guest asked for, in milliseconds.
func (p *Plugin) TickPeriod() uint32 { return p.tickPeriod }

// Tick calls proxy_on_tick, as Envoy's timer does every period.
func (p *Plugin) Tick() error {
	_, err := p.vm.call(p.id, p.vm.g.tick, uint64(p.id))
	return err
}

// Close ends the plugin as Envoy does: proxy_on_done, then, if the guest
// answered true, proxy_on_delete. A guest still busy (an answer it waits
// for) keeps its root context, ticks and answers still reaching it, until
// it calls proxy_done: the host deletes it once that call into the guest
// returns.
func (p *Plugin) Close() error {
	done, err := p.vm.call(p.id, p.vm.g.done, uint64(p.id))
	if err != nil {
		return err
	}
	if done == 0 {
		p.closing = true
		return nil
	}
	return p.delete()
}

func (p *Plugin) delete() error {
	delete(p.vm.plugins, p.id)
	_, err := p.vm.call(p.id, p.vm.g.del, uint64(p.id))
	return err
}

// Closed says the plugin's root context was deleted.
func (p *Plugin) Closed() bool { return p.vm.plugins[p.id] != p }

// Stream is one HTTP stream through the plugin: its http context.
type Stream struct {
	p      *Plugin
	id     uint32
	props  map[string][]byte
	action Action
	// The stream's maps and bodies as they stand: the request headers
	// after the filter are what goes upstream.
	reqHeaders, reqTrailers, respHeaders, respTrailers [][2]string
	reqBody, respBody                                  []byte
	hasReqBody, hasRespBody                            bool
	local                                              *LocalResponse
	resumed                                            int // proxy_continue_stream calls
}

// LocalResponse is a response the filter sent itself
// (proxy_send_local_response).
type LocalResponse struct {
	Status     uint32
	Details    string
	Headers    [][2]string
	Body       []byte
	GRPCStatus int32
}

// NewStream makes an http context on the plugin (proxy_on_context_create).
func (p *Plugin) NewStream() (*Stream, error) {
	s := &Stream{p: p, id: p.vm.newID(), props: map[string][]byte{}}
	p.vm.streams[s.id] = s
	if _, err := p.vm.call(s.id, p.vm.g.contextCreate, uint64(s.id), uint64(p.id)); err != nil {
		return nil, err
	}
	return s, nil
}

// ID is the stream's context id.
func (s *Stream) ID() uint32 { return s.id }

// SetProperty sets a property for this stream (request.time,
// source.address, ...).
func (s *Stream) SetProperty(path []string, value []byte) {
	s.props[strings.Join(path, "\x00")] = slices.Clone(value)
}

// RequestHeaders hands the filter the request's headers
// (proxy_on_request_headers).
func (s *Stream) RequestHeaders(headers [][2]string, endOfStream bool) (Action, error) {
	s.reqHeaders = slices.Clone(headers)
	return s.callback(s.p.vm.g.reqHeaders, uint64(len(headers)), endOfStream)
}

// RequestBody hands the filter a chunk of the request's body. As in Envoy,
// a body the filter paused on (StopIterationAndBuffer) is buffered: the
// next call sees all of it.
func (s *Stream) RequestBody(chunk []byte, endOfStream bool) (Action, error) {
	s.reqBody, s.hasReqBody = append(s.reqBody, chunk...), true
	a, err := s.callback(s.p.vm.g.reqBody, uint64(len(s.reqBody)), endOfStream)
	if err == nil && a != Pause {
		s.reqBody = nil // sent on: the next chunk is new
	}
	return a, err
}

// ResponseHeaders hands the filter the response's headers.
func (s *Stream) ResponseHeaders(headers [][2]string, endOfStream bool) (Action, error) {
	s.respHeaders = slices.Clone(headers)
	return s.callback(s.p.vm.g.respHeaders, uint64(len(headers)), endOfStream)
}

// ResponseBody hands the filter a chunk of the response's body, buffered
// as RequestBody's.
func (s *Stream) ResponseBody(chunk []byte, endOfStream bool) (Action, error) {
	s.respBody, s.hasRespBody = append(s.respBody, chunk...), true
	a, err := s.callback(s.p.vm.g.respBody, uint64(len(s.respBody)), endOfStream)
	if err == nil && a != Pause {
		s.respBody = nil
	}
	return a, err
}

func (s *Stream) callback(fn api.Function, n uint64, endOfStream bool) (Action, error) {
	eos := uint64(0)
	if endOfStream {
		eos = 1
	}
	res, err := s.p.vm.call(s.id, fn, uint64(s.id), n, eos)
	if err != nil {
		return 0, err
	}
	s.action = Action(res)
	return s.action, nil
}

// Done ends the stream as Envoy does: proxy_on_done when the filter is
// destroyed, proxy_on_log at the access log, proxy_on_delete.
func (s *Stream) Done() error {
	v := s.p.vm
	defer delete(v.streams, s.id)
	for _, fn := range []api.Function{v.g.done, v.g.log, v.g.del} {
		if _, err := v.call(s.id, fn, uint64(s.id)); err != nil {
			return fmt.Errorf("ending stream %d: %w", s.id, err)
		}
	}
	return nil
}

// Action is what the last callback returned.
func (s *Stream) Action() Action { return s.action }

// Resumed says how many times the filter resumed the stream
// (proxy_continue_stream).
func (s *Stream) Resumed() int { return s.resumed }

// RequestHeadersNow are the request's headers as they stand: after the
// filter allowed it, what goes upstream.
func (s *Stream) RequestHeadersNow() [][2]string { return slices.Clone(s.reqHeaders) }

// ResponseHeadersNow are the response's headers as they stand.
func (s *Stream) ResponseHeadersNow() [][2]string { return slices.Clone(s.respHeaders) }

// Local is the response the filter sent itself, or nil.
func (s *Stream) Local() *LocalResponse { return s.local }
