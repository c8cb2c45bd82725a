package api

import "time"

// AP is an attachment point, as "steady dr list" and cfgadm show it.
type AP struct {
	ID         string    `json:"ap_id"`
	Type       string    `json:"type"`
	Class      string    `json:"class"`
	Receptacle string    `json:"r_state"`
	Occupant   string    `json:"o_state"`
	Condition  string    `json:"condition"`
	Busy       bool      `json:"busy"`
	Info       string    `json:"info,omitempty"`
	StatusTime time.Time `json:"status_time,omitzero"`
	PhysID     string    `json:"physid,omitempty"`
	// Resources are the names the AP's users register (left out of a
	// listing unless asked for: thousands of memory blocks).
	Resources []string `json:"resources,omitempty"`
}

// RCMAnswer is one client's word on one resource: the rows of the
// "Resource / Information" table.
type RCMAnswer struct {
	Resource string `json:"resource"`
	Client   string `json:"client"`
	Info     string `json:"info,omitempty"`
	Error    string `json:"error,omitempty"`
	State    string `json:"state"`
	Seq      string `json:"seq"`
}

// DRRequest asks for a DR function on attachment points.
type DRRequest struct {
	// Function is configure, unconfigure, connect, disconnect or test.
	Function string   `json:"function"`
	APs      []string `json:"ap_ids"`
	Force    bool     `json:"force,omitempty"`
	// DryRun runs the query phase only and reports every client's answer.
	DryRun bool `json:"dry_run,omitempty"`
}

// DROutcome is what a function did to one attachment point. A failed
// one carries the error's code and message; the others were still tried.
type DROutcome struct {
	AP       AP          `json:"ap"`
	Function string      `json:"function"`
	Done     bool        `json:"done"`
	DryRun   bool        `json:"dry_run,omitempty"`
	Answers  []RCMAnswer `json:"answers,omitempty"`
	Restored string      `json:"restored,omitempty"`
	Error    *Error      `json:"error,omitempty"`
}

// DRResult is the answer to a DRRequest.
type DRResult struct {
	Outcomes []DROutcome `json:"outcomes"`
}

// RCMInfo is the answer of "steady rcm info": who uses the resources.
type RCMInfo struct {
	Answers []RCMAnswer `json:"answers"`
}

// RCMScript describes one RCM script file.
type RCMScript struct {
	Name      string   `json:"name"`
	Path      string   `json:"path"`
	Info      string   `json:"info,omitempty"`
	Timeout   string   `json:"timeout,omitempty"`
	Resources []string `json:"resources,omitempty"`
	Error     string   `json:"error,omitempty"`
}

// RCMClient is one registered client of the coordination engine.
type RCMClient struct {
	Name       string    `json:"name"`
	Interests  []string  `json:"interests"`
	Registered time.Time `json:"registered"`
	Error      string    `json:"error,omitempty"`
}
