package api

// RGMProp is one property of a resource or group, as it is now.
type RGMProp struct {
	Name      string   `json:"name"`
	Type      string   `json:"type"` // INT, BOOLEAN, STRING, STRINGARRAY, ENUM
	Values    []string `json:"values"`
	Set       bool     `json:"set"` // set explicitly (else the default)
	Extension bool     `json:"extension,omitempty"`
	Tunable   string   `json:"tunable,omitempty"`
}

// RGMPropSpec is a property a type declares.
type RGMPropSpec struct {
	Name         string   `json:"name"`
	Type         string   `json:"type"`
	Enum         []string `json:"enum,omitempty"`
	Default      []string `json:"default,omitempty"`
	HasDefault   bool     `json:"has_default"`
	Optional     bool     `json:"optional,omitempty"`
	AgentDefault string   `json:"agent_default,omitempty"`
	Min          *int     `json:"min,omitempty"`
	Max          *int     `json:"max,omitempty"`
	Tunable      string   `json:"tunable"`
	Extension    bool     `json:"extension,omitempty"`
	PerNode      bool     `json:"per_node,omitempty"`
	Description  string   `json:"description,omitempty"`
}

// RGMType is a resource type.
type RGMType struct {
	Name           string              `json:"name"`
	Source         string              `json:"source"` // rtr, ocf, builtin
	Version        string              `json:"version"`
	Vendor         string              `json:"vendor,omitempty"`
	Description    string              `json:"description,omitempty"`
	APIVersion     int                 `json:"api_version,omitempty"`
	Failover       bool                `json:"failover"`
	SingleInstance bool                `json:"single_instance,omitempty"`
	InitNodes      string              `json:"init_nodes,omitempty"`
	BaseDir        string              `json:"base_dir,omitempty"`
	Agent          string              `json:"agent,omitempty"`
	Methods        map[string]string   `json:"methods,omitempty"`
	Props          []RGMPropSpec       `json:"props"`
	Extra          map[string][]string `json:"extra,omitempty"`
	Resources      []string            `json:"resources"`
}

// RGMResource is a resource with its state on this node.
type RGMResource struct {
	Name        string    `json:"name"`
	Group       string    `json:"group"`
	Type        string    `json:"type"`
	TypeVersion string    `json:"type_version"`
	Node        string    `json:"node"`
	Enabled     bool      `json:"enabled"`
	Monitored   bool      `json:"monitored"`
	State       string    `json:"state"`
	Status      string    `json:"status"`
	StatusMsg   string    `json:"status_msg,omitempty"`
	Restarts    int       `json:"num_resource_restarts"`
	RGRestarts  int       `json:"num_rg_restarts"`
	Props       []RGMProp `json:"props"`
	// What the RGM knows of its last moves, for "steady rg why".
	Last       string `json:"last,omitempty"`
	LastOutput string `json:"last_output,omitempty"`
	Decision   string `json:"decision,omitempty"`
	Waiting    string `json:"waiting,omitempty"`
}

// RGMGroup is a resource group with its state on this node.
type RGMGroup struct {
	Name      string    `json:"name"`
	Node      string    `json:"node"`
	Managed   bool      `json:"managed"`
	Online    bool      `json:"online"` // the administrator's intent
	Suspended bool      `json:"suspended,omitempty"`
	State     string    `json:"state"`
	Assigned  bool      `json:"assigned"` // to be online on this node
	Restarts  int       `json:"restarts"`
	Decision  string    `json:"decision,omitempty"`
	Props     []RGMProp `json:"props"`
	Resources []string  `json:"resources"`
	// In a cluster: the nodes the controller assigned the group to, the
	// assignment's epoch, and the group's state across the cluster (on
	// its primaries, or PENDING_OFFLINE while another node stops it).
	Primaries    []string       `json:"primaries,omitempty"`
	Epoch        uint64         `json:"epoch,omitempty"`
	ClusterState string         `json:"cluster_state,omitempty"`
	Placement    string         `json:"placement,omitempty"` // the controller's last reason
	NodeStates   []RGMNodeState `json:"node_states,omitempty"`
}

// RGMPlacement is where a group runs across the cluster.
type RGMPlacement struct {
	Group string `json:"group"`
	// Primaries are the nodes the controller assigned it to.
	Primaries []string `json:"primaries"`
	// Epoch is the assignment's epoch (STEADY_EPOCH of its methods).
	Epoch  uint64 `json:"epoch,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Nodes is the group's state on each node that reports it.
	Nodes []RGMNodeState `json:"nodes"`
}

// RGMNodeState is a group's state on one node.
type RGMNodeState struct {
	Node  string `json:"node"`
	State string `json:"state"`
}

// RGMTypeRequest registers a type: an RTR file's text (and its name, for
// messages), or an OCF agent name.
type RGMTypeRequest struct {
	RTR     string `json:"rtr,omitempty"`
	RTRFile string `json:"rtr_file,omitempty"`
	OCF     string `json:"ocf,omitempty"`
}

// RGMGroupRequest creates a group.
type RGMGroupRequest struct {
	Name  string            `json:"name"`
	Props map[string]string `json:"props,omitempty"`
}

// RGMResourceRequest creates a resource. Property values are text;
// STRINGARRAY values are comma-separated.
type RGMResourceRequest struct {
	Name     string            `json:"name"`
	Group    string            `json:"group"`
	Type     string            `json:"type"`
	Props    map[string]string `json:"props,omitempty"`
	Disabled bool              `json:"disabled,omitempty"`
}

// RGMSetRequest changes properties.
type RGMSetRequest struct {
	Props map[string]string `json:"props"`
}

// RGMLog is the tail of a resource's method log.
type RGMLog struct {
	Path  string   `json:"path"`
	Lines []string `json:"lines"`
}

// RGMCluster answers what scha_cluster_get asks.
type RGMCluster struct {
	ClusterName    string   `json:"cluster_name"`
	LocalNode      string   `json:"local_node"`
	LocalNodeID    int      `json:"local_node_id"`
	Nodes          []string `json:"nodes"`
	NodeStates     []string `json:"node_states"` // UP or DOWN, in the order of Nodes
	ResourceGroups []string `json:"resource_groups"`
	ResourceTypes  []string `json:"resource_types"`
	SyslogFacility string   `json:"syslog_facility"`
}

// RGMWhy explains a group's state: sentences first, then the facts they
// come from.
type RGMWhy struct {
	Group     RGMGroup      `json:"group"`
	Summary   []string      `json:"summary"`
	Resources []RGMResource `json:"resources"` // in start order
	Events    []Event       `json:"events"`    // the group's latest EC_rgm events
	// Placement explains, in a cluster, why the group is where it is and
	// why not on each other node.
	Placement []string `json:"placement,omitempty"`
}

// OCFTestRequest asks for the ocf-tester sequence against an agent.
type OCFTestRequest struct {
	Agent string `json:"agent"` // ocf:PROVIDER:AGENT
	// Instance is OCF_RESOURCE_INSTANCE; agents keep state by it.
	Instance string            `json:"instance,omitempty"`
	Params   map[string]string `json:"params,omitempty"`
}

// OCFTestStep is one step of the sequence.
type OCFTestStep struct {
	Name   string `json:"name"`
	Action string `json:"action"`
	Want   []int  `json:"want"`
	Got    int    `json:"got"`
	Passed bool   `json:"passed"`
	// Informational steps (migration, reload) do not fail the test.
	Informational bool     `json:"informational,omitempty"`
	Output        string   `json:"output,omitempty"`
	Duration      Duration `json:"duration"`
}

// OCFTestReport is the whole sequence's outcome.
type OCFTestReport struct {
	Agent  string        `json:"agent"`
	Steps  []OCFTestStep `json:"steps"`
	Failed int           `json:"failed"`
	// Aborted names the step after which the sequence could not go on.
	Aborted string `json:"aborted,omitempty"`
}

// OCFTestMessage is one line of the streamed answer to an OCF test: a
// step as it finishes, then the report (or an error).
type OCFTestMessage struct {
	Step   *OCFTestStep   `json:"step,omitempty"`
	Report *OCFTestReport `json:"report,omitempty"`
	Error  *Error         `json:"error,omitempty"`
}

// RGMClearRequest clears a flag of a resource.
type RGMClearRequest struct {
	Flag string `json:"flag"` // STOP_FAILED
}

// RGMDeclaration is the resource group manager's part of a configuration
// file: what "steady config export" prints and "steady config apply"
// makes true.
type RGMDeclaration struct {
	Types  []RGMTypeDecl  `json:"types,omitempty"`
	Groups []RGMGroupDecl `json:"groups,omitempty"`
}

// RGMTypeDecl names a resource type and where it comes from: an RTR file
// on the agent's host or an OCF agent. A type that is registered already
// may be named alone.
type RGMTypeDecl struct {
	Name string `json:"name,omitempty"`
	RTR  string `json:"rtr,omitempty"`
	OCF  string `json:"ocf,omitempty"`
}

// RGMGroupDecl declares a group, its properties, the operator's intent
// (nil: unchanged, or the default for a new group) and its resources.
type RGMGroupDecl struct {
	Name      string              `json:"name"`
	Props     map[string][]string `json:"properties,omitempty"`
	Managed   *bool               `json:"managed,omitempty"`
	Online    *bool               `json:"online,omitempty"`
	Suspended *bool               `json:"suspended,omitempty"`
	Resources []RGMResourceDecl   `json:"resources,omitempty"`
}

// RGMResourceDecl declares a resource. A one-element value of a
// STRINGARRAY property is split at commas, as on the command line.
type RGMResourceDecl struct {
	Name      string              `json:"name"`
	Type      string              `json:"type"`
	Props     map[string][]string `json:"properties,omitempty"`
	Enabled   *bool               `json:"enabled,omitempty"`
	Monitored *bool               `json:"monitored,omitempty"`
}

// RGMApplyRequest is the body of POST /v1/rgm/apply.
type RGMApplyRequest struct {
	Declaration RGMDeclaration `json:"declaration"`
	DryRun      bool           `json:"dry_run,omitempty"`
}

// RGMChange is one line of the difference an apply makes.
type RGMChange struct {
	Kind    string   `json:"kind"`   // type, group, resource
	Name    string   `json:"name"`   //
	Action  string   `json:"action"` // create, update, unchanged, kept (not in the file)
	Details []string `json:"details,omitempty"`
}

// RGMApplyResult answers an apply: the changes, and whether they were
// made (false for a dry run).
type RGMApplyResult struct {
	Changes []RGMChange `json:"changes"`
	Applied bool        `json:"applied"`
}

// RGMSwitchRequest moves a group to a node (steady rg switch).
type RGMSwitchRequest struct {
	Node string `json:"node"`
}

// EvacuateRequest keeps every group off a node for a while (steady
// cluster evacuate); the groups move now.
type EvacuateRequest struct {
	Node string   `json:"node"`
	For  Duration `json:"for"`
}
