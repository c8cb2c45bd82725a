package api

import "time"

// PMFStatus is the answer of GET /v1/pmf: how the monitor tracks processes.
type PMFStatus struct {
	// Mode is "cgroup" (each tag in its own cgroup v2) or "process-group"
	// (the agent as child subreaper, with process groups and markers).
	Mode   string `json:"mode"`
	Cgroup string `json:"cgroup,omitempty"` // the parent cgroup of the tags
	Reason string `json:"reason,omitempty"` // why the fallback is in use
	// Levels says whether child monitoring levels (-C) can be used.
	Levels bool `json:"levels"`
	Tags   int  `json:"tags"`
}

// PMFTag describes a supervised tag (pmfadm -l).
type PMFTag struct {
	Tag     string   `json:"tag"`
	State   string   `json:"state"` // running, restarting, action, stopping
	Command []string `json:"command"`
	Env     []string `json:"env"`
	Dir     string   `json:"dir"`
	Owner   string   `json:"owner"`
	UID     uint32   `json:"uid"`
	// Retries and Period are the limits; -1 retries is no limit, a zero
	// period the whole life of the tag.
	Retries     int       `json:"retries"`
	Period      Duration  `json:"period"`
	RetriesUsed int       `json:"retries_used"`
	Level       int       `json:"level"` // -1: all descendants
	Action      []string  `json:"action,omitempty"`
	Instance    uint64    `json:"instance"`
	MainPID     int       `json:"main_pid,omitempty"`
	PIDs        []int     `json:"pids"`
	Started     time.Time `json:"started"`
	LastExit    string    `json:"last_exit,omitempty"`
	Tracking    string    `json:"tracking"`
	Log         string    `json:"log"`
}

// PMFStartRequest is the body of POST /v1/pmf/tags. The processes run as
// the caller (from the socket's peer credentials), never as a user named
// in the request.
type PMFStartRequest struct {
	Tag     string   `json:"tag"`
	Command []string `json:"command"`
	// Env is the environment: with PassEnv false only these entries are
	// added to a minimal one (PATH, HOME, USER, LOGNAME).
	Env     []string `json:"env,omitempty"`
	PassEnv bool     `json:"pass_env,omitempty"`
	Dir     string   `json:"dir"`
	Retries int      `json:"retries"`
	// Period: zero or absent means the whole life of the tag.
	Period Duration `json:"period,omitempty"`
	Level  *int     `json:"level,omitempty"`
	// Action is the action program and its arguments (absolute path).
	Action []string `json:"action,omitempty"`
}

// PMFSignalRequest is the body of POST /v1/pmf/tags/{tag}/stop and /kill.
type PMFSignalRequest struct {
	Signal string `json:"signal,omitempty"` // name (TERM) or number; default TERM for stop, KILL for kill
	// Wait for the processes to exit this long; for stop, then KILL.
	Wait Duration `json:"wait,omitempty"`
}

// PMFModifyRequest is the body of PATCH /v1/pmf/tags/{tag}.
type PMFModifyRequest struct {
	Retries *int      `json:"retries,omitempty"`
	Period  *Duration `json:"period,omitempty"`
}
