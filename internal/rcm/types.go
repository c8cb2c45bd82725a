package rcm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors of the engine. The API maps them to its codes.
var (
	// ErrBusy: a resource, an ancestor or a descendant is held by another
	// operation in flight.
	ErrBusy = errors.New("resource busy")
	// ErrRefused: a client refused, or failed, the request.
	ErrRefused = errors.New("request refused")
	// ErrInvalid: a malformed name or flag.
	ErrInvalid = errors.New("invalid request")
	// ErrNotFound: no such operation in flight.
	ErrNotFound = errors.New("no such operation")
)

// Op is what a client is asked or told.
type Op int

// The operations. Request operations may be refused (and are asked first
// with the Query flag); notifications are not refused, only reported.
const (
	OpInfo Op = iota
	OpOffline
	OpOnline
	OpRemove
	OpSuspend
	OpResume
	OpCapacity
	OpCapacityDone
	OpEvent
)

var opNames = [...]string{"info", "offline", "online", "remove", "suspend", "resume", "capacity", "capacity-done", "event"}

// MarshalText writes the operation's name.
func (o Op) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// UnmarshalText reads an operation's name.
func (o *Op) UnmarshalText(b []byte) error {
	for i, n := range opNames {
		if n == string(b) {
			*o = Op(i)
			return nil
		}
	}
	return fmt.Errorf("%w: unknown operation %q", ErrInvalid, b)
}

func (o Op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", int(o))
}

// Flags qualify a request.
type Flags uint32

const (
	// Query asks whether the client could let go, without letting go.
	Query Flags = 1 << iota
	// Force asks the client to let go even where it would refuse; each
	// client decides what force overrides (the root filesystem never).
	Force
	// Scope collects every client's usage in the answer, not only the
	// refusals'.
	Scope
	// Dependents makes info follow what clients export (net/eth1 to its
	// addresses to the groups that use them).
	Dependents
)

func (f Flags) String() string {
	var s []string
	for _, x := range []struct {
		f Flags
		n string
	}{{Query, "query"}, {Force, "force"}, {Scope, "scope"}, {Dependents, "dependents"}} {
		if f&x.f != 0 {
			s = append(s, x.n)
		}
	}
	return strings.Join(s, ",")
}

// Kind is the kind of interest a client registers.
type Kind uint8

// Interest kinds: DR operations on the name and everything below it,
// capacity changes of exactly the name, events on exactly the name.
const (
	KindDR Kind = 1 << iota
	KindCapacity
	KindEvent
)

func (k Kind) String() string {
	var s []string
	for _, x := range []struct {
		k Kind
		n string
	}{{KindDR, "dr"}, {KindCapacity, "capacity"}, {KindEvent, "event"}} {
		if k&x.k != 0 {
			s = append(s, x.n)
		}
	}
	return strings.Join(s, ",")
}

// Interest is one name a client uses.
type Interest struct {
	Name string
	Kind Kind
}

// Capacity describes a change of the CPUs or the memory of the system.
type Capacity struct {
	OldTotal, NewTotal int   // CPUs, or pages of memory
	OldCPUs, NewCPUs   []int // CPU ids (CPU changes)
	PageSize           int   // bytes (memory changes)
}

// Call is one question or notice to a client.
type Call struct {
	Op       Op
	Resource string // the name as the client registered it
	Flags    Flags
	// Suspended tells a resume whether the resource had been suspended
	// (else it is the cancel of a suspend that did not complete).
	Suspended bool
	Interval  time.Duration // suspend
	Capacity  *Capacity     // capacity operations
	Event     map[string]string
	// Handle cascades the operation onto names the client exports.
	Handle *Handle
}

// Client is a user of resources: a Go module or a script.
type Client interface {
	// Name identifies the client in answers ("filesys", "SUNW,vdisk.pl").
	Name() string
	// Register lists the names the client uses now. It replaces what the
	// client registered before and is asked again, at most every few
	// seconds, before operations (mounts and addresses change without
	// telling anyone).
	Register(ctx context.Context) ([]Interest, error)
	// Call asks or tells the client. For OpInfo it returns how the client
	// uses the resource; for requests an error refuses (the text is shown
	// to the user as the reason).
	Call(ctx context.Context, c Call) (usage string, err error)
}

// Live is a Client whose names change without anyone telling it (a
// mount, an address) and whose Register is cheap: it is asked to register
// before every operation, not only when its names are older than the
// resync interval, so that a filesystem mounted a second ago is seen.
type Live interface {
	Client
	Live()
}

// State is the state of a resource for one client, and of an operation.
type State int

// States, as in Solaris RCM.
const (
	StateOnline State = iota
	StateOfflineQuerying
	StateOfflineQuery
	StateOfflineQueryFail
	StateOfflining
	StateOffline
	StateOfflineFail
	StateOnlining
	StateRemoving
	StateRemoved
	StateSuspendQuerying
	StateSuspendQuery
	StateSuspendQueryFail
	StateSuspending
	StateSuspended
	StateSuspendFail
	StateResuming
)

var stateNames = [...]string{"online", "offline-querying", "offline-query", "offline-query-fail", "offlining", "offline",
	"offline-fail", "onlining", "removing", "removed", "suspend-querying", "suspend-query", "suspend-query-fail",
	"suspending", "suspended", "suspend-fail", "resuming"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// MarshalText writes the state's name.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a state's name.
func (s *State) UnmarshalText(b []byte) error {
	for i, n := range stateNames {
		if n == string(b) {
			*s = State(i)
			return nil
		}
	}
	return fmt.Errorf("%w: unknown state %q", ErrInvalid, b)
}

// Seq identifies an operation: a base number that only grows, shifted
// left 8 bits, plus the cascade depth in the low 8 bits.
type Seq uint64

// Base is the top-level operation's number.
func (s Seq) Base() uint64 { return uint64(s) >> 8 }

// Depth is the cascade depth (0 for the initiator's own call).
func (s Seq) Depth() int { return int(s & 0xff) }

func (s Seq) String() string { return fmt.Sprintf("%d.%d", s.Base(), s.Depth()) }

// Answer is one client's word on one resource.
type Answer struct {
	Resource string `json:"resource"`
	Client   string `json:"client"`
	Info     string `json:"info,omitempty"`
	Error    string `json:"error,omitempty"`
	State    State  `json:"state"`
	Seq      string `json:"seq"`
}

// Result is what an operation returns: its sequence number and the
// answers of the clients (every refusal, and every usage with Scope).
type Result struct {
	Seq     Seq      `json:"-"`
	ID      uint64   `json:"id"`
	Answers []Answer `json:"answers"`
}

// Entry is an operation in flight, as persisted.
type Entry struct {
	ID        uint64        `json:"id"`
	Op        Op            `json:"op"`
	Resources []string      `json:"resources"`
	Flags     Flags         `json:"flags"`
	State     State         `json:"state"`
	Interval  time.Duration `json:"interval,omitempty"`
	Initiator string        `json:"initiator,omitempty"`
	Started   time.Time     `json:"started"`
}

// Snapshot is the whole persisted state of the engine.
type Snapshot struct {
	NextID  uint64  `json:"next_id"`
	Entries []Entry `json:"entries"`
}

// Store keeps the in-flight list across agent restarts. Save is called
// with the whole list after every change of it and must be durable when
// it returns.
type Store interface {
	Save(Snapshot) error
}

// Phase is one step of an operation, reported to the Observer.
type Phase struct {
	ID        uint64
	Depth     int
	Op        Op
	Step      string // "query", "request", "notify", "refused", "busy", "undo", "recover"
	Resources []string
	Flags     Flags
	Err       error
	Answers   []Answer
}

// ClientInfo describes a client for listings.
type ClientInfo struct {
	Name       string    `json:"name"`
	Interests  []string  `json:"interests"`
	Registered time.Time `json:"registered"`
	Error      string    `json:"error,omitempty"`
}
