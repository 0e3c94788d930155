package audit

import "time"

// Stats summarises the records of a period (GET /admin/audit/stats).
type Stats struct {
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	Total       int64     `json:"total"`
	Allowed     int64     `json:"allowed"`
	Denied      int64     `json:"denied"`
	Agents      []Count   `json:"agents"`      // by agent id, most records first
	Actions     []Count   `json:"actions"`     // most records first
	DenyReasons []Count   `json:"denyReasons"` // reasons of denials, most first
	Sources     []Count   `json:"sources"`     // enforcement points
}

// Count is one line of a Stats ranking. Name is the agent's name in the
// agents ranking, when the agent is still known.
type Count struct {
	Key    string `json:"key"`
	Name   string `json:"name,omitempty"`
	Total  int64  `json:"total"`
	Denied int64  `json:"denied"`
}

// Minute counts the decisions of one minute of a timeline (the console's
// overview chart).
type Minute struct {
	Start   time.Time `json:"start"`
	Allowed int64     `json:"allowed"`
	Denied  int64     `json:"denied"`
}
