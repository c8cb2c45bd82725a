package api

import (
	"fmt"
	"time"
)

// Health of a subsystem, worst last.
type Health string

// Health values.
const (
	HealthOK       Health = "ok"
	HealthDegraded Health = "degraded"
	HealthFailed   Health = "failed"
)

// Status is the answer of GET /v1/status.
type Status struct {
	Node       string            `json:"node"`
	Version    string            `json:"version"`
	PID        int               `json:"pid"`
	Started    time.Time         `json:"started"`
	Uptime     Duration          `json:"uptime"`
	DataDir    string            `json:"data_dir"`
	Store      StoreStatus       `json:"store"`
	Events     EventsStatus      `json:"events"`
	Subsystems []SubsystemStatus `json:"subsystems"`
	Groups     []GroupStatus     `json:"groups"`
}

// GroupStatus is one resource group in the agent's status.
type GroupStatus struct {
	Name      string `json:"name"`
	State     string `json:"state"`
	Online    int    `json:"resources_online"`
	Resources int    `json:"resources"`
}

// StoreStatus describes the store as the agent sees it.
type StoreStatus struct {
	Mode     string `json:"mode"` // "embedded" or "external"
	Member   string `json:"member,omitempty"`
	Role     string `json:"role"` // leader, follower, learner, client, down
	Leader   string `json:"leader,omitempty"`
	Revision int64  `json:"revision"`
	DBSize   int64  `json:"db_size_bytes"`
	Members  int    `json:"members"`
	Error    string `json:"error,omitempty"`
}

// EventsStatus describes the local event journal.
type EventsStatus struct {
	FirstSeq    uint64 `json:"first_seq"`
	LastSeq     uint64 `json:"last_seq"`
	Segments    int    `json:"segments"`
	Bytes       int64  `json:"bytes"`
	Subscribers int    `json:"subscribers"`
}

// SubsystemStatus is the health of one part of the agent.
type SubsystemStatus struct {
	Name   string `json:"name"`
	Health Health `json:"health"`
	Detail string `json:"detail,omitempty"`
}

// Duration is a time.Duration that travels as a Go duration string ("1m30s").
type Duration time.Duration

// MarshalText encodes d as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText decodes a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// EventList is the answer of GET /v1/events without follow.
type EventList struct {
	Events []Event `json:"events"`
	// Next is the sequence number to pass as since= to continue.
	Next uint64 `json:"next"`
	// FirstAvailable is the oldest sequence number the journal still holds;
	// when since+1 is older, events were removed by retention.
	FirstAvailable uint64 `json:"first_available"`
}

// PublishRequest is the body of POST /v1/events.
type PublishRequest struct {
	Class    string `json:"class"`
	Subclass string `json:"subclass"`
	Attrs    Attrs  `json:"attrs,omitempty"`
}

// PublishResponse answers POST /v1/events once the event is durable.
type PublishResponse struct {
	Seq uint64 `json:"seq"`
}

// ValidName reports whether s can be a class, subclass or attribute name:
// a letter or underscore, then letters, digits and _ . : -, at most 128.
// (A loop rather than a regexp: it runs for every published event.)
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'):
		case i > 0 && ((c >= '0' && c <= '9') || c == '.' || c == ':' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// Validate checks a publish request.
func (r PublishRequest) Validate() error {
	if !ValidName(r.Class) {
		return fmt.Errorf("class %q is not a valid name (a letter or _, then letters, digits, _ . : -)", r.Class)
	}
	if !ValidName(r.Subclass) {
		return fmt.Errorf("subclass %q is not a valid name (a letter or _, then letters, digits, _ . : -)", r.Subclass)
	}
	for name := range r.Attrs {
		if !ValidName(name) {
			return fmt.Errorf("attribute name %q is not a valid name", name)
		}
	}
	return nil
}

// Subscriber is a script run for each matching event, as syseventadm
// configures them.
type Subscriber struct {
	ID       string   `json:"id"`
	Class    string   `json:"class"`
	Subclass string   `json:"subclass,omitempty"` // empty: every subclass
	User     string   `json:"user,omitempty"`     // empty: the owner of Path
	Path     string   `json:"path"`
	Args     []string `json:"args,omitempty"`
	// Timeout bounds one run; zero means the agent's default.
	Timeout Duration `json:"timeout,omitempty"`
	// Retries is how often a failed run is retried before the event is
	// skipped for this subscriber; negative means the agent's default.
	Retries int       `json:"retries"`
	Created time.Time `json:"created"`
	// Delivered is the sequence number of the last event handled.
	Delivered uint64 `json:"delivered"`
	// Failures counts events given up on since the subscriber was added.
	Failures  uint64 `json:"failures"`
	LastError string `json:"last_error,omitempty"`
}

// SubscriberRequest is the body of POST /v1/events/subscribers.
type SubscriberRequest struct {
	Class    string   `json:"class"`
	Subclass string   `json:"subclass,omitempty"`
	User     string   `json:"user,omitempty"`
	Path     string   `json:"path"`
	Args     []string `json:"args,omitempty"`
	Timeout  Duration `json:"timeout,omitempty"`
	Retries  *int     `json:"retries,omitempty"`
}
