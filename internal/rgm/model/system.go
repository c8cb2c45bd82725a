package model

import "strings"

// Methods a resource type may declare, in rt_reg(4) names.
const (
	MethodStart        = "START"
	MethodStop         = "STOP"
	MethodValidate     = "VALIDATE"
	MethodUpdate       = "UPDATE"
	MethodInit         = "INIT"
	MethodFini         = "FINI"
	MethodBoot         = "BOOT"
	MethodMonitorStart = "MONITOR_START"
	MethodMonitorStop  = "MONITOR_STOP"
	MethodMonitorCheck = "MONITOR_CHECK"
	MethodPrenetStart  = "PRENET_START"
	MethodPostnetStop  = "POSTNET_STOP"
)

// AllMethods lists the methods in the order documentation shows them.
var AllMethods = []string{
	MethodStart, MethodStop, MethodValidate, MethodUpdate, MethodInit, MethodFini, MethodBoot,
	MethodMonitorStart, MethodMonitorStop, MethodMonitorCheck, MethodPrenetStart, MethodPostnetStop,
}

// IsMethod reports whether s (any case) names a method.
func IsMethod(s string) bool {
	for _, m := range AllMethods {
		if strings.EqualFold(m, s) {
			return true
		}
	}
	return false
}

// TimeoutProp is the name of a method's timeout property, e.g.
// Start_timeout, Monitor_start_timeout.
func TimeoutProp(method string) string {
	m := strings.ToLower(method)
	return strings.ToUpper(m[:1]) + m[1:] + "_timeout"
}

// Failover modes.
const (
	FailoverNone        = "NONE"
	FailoverSoft        = "SOFT"
	FailoverHard        = "HARD"
	FailoverRestartOnly = "RESTART_ONLY"
	FailoverLogOnly     = "LOG_ONLY"
)

// Resource system properties with a conditional existence: they belong to
// a resource only when its type declares them (in an RTR file with a
// { PROPERTY = ...; } entry; OCF and built-in types declare them all).
var conditionalProps = map[string]PropSpec{
	"RETRY_COUNT": {Name: "Retry_count", Type: TypeInt, Default: []string{"2"}, HasDefault: true,
		Min: intp(-1), Tunable: TunableWhenDisabled,
		Description: "restarts allowed within Retry_interval before a giveover is requested (-1: no limit)"},
	"RETRY_INTERVAL": {Name: "Retry_interval", Type: TypeInt, Default: []string{"300"}, HasDefault: true,
		Min: intp(0), Tunable: TunableWhenDisabled,
		Description: "seconds of the sliding window of Retry_count"},
	"THOROUGH_PROBE_INTERVAL": {Name: "Thorough_probe_interval", Type: TypeInt, Default: []string{"60"}, HasDefault: true,
		Min: intp(1), Max: intp(3600), Tunable: TunableWhenDisabled,
		Description: "seconds between probes of the resource"},
	"CHEAP_PROBE_INTERVAL": {Name: "Cheap_probe_interval", Type: TypeInt, Default: []string{"30"}, HasDefault: true,
		Min: intp(1), Max: intp(3600), Tunable: TunableWhenDisabled,
		Description: "seconds between quick probes"},
	"PORT_LIST": {Name: "Port_list", Type: TypeStringArray, Default: []string{}, HasDefault: true,
		Tunable: TunableAtCreation, Description: "ports the resource serves, as port/protocol"},
	"PROBE_TIMEOUT": {Name: "Probe_timeout", Type: TypeInt, Default: []string{"30"}, HasDefault: true,
		Min: intp(1), Tunable: TunableAnytime, Description: "seconds one probe may take"},
}

// alwaysProps belong to every resource.
var alwaysProps = []PropSpec{
	{Name: "Failover_mode", Type: TypeEnum, Enum: []string{FailoverNone, FailoverSoft, FailoverHard, FailoverRestartOnly, FailoverLogOnly},
		Default: []string{FailoverNone}, HasDefault: true, Tunable: TunableAnytime,
		Description: "what a failed method or a monitor may cause: NONE, SOFT, HARD, RESTART_ONLY, LOG_ONLY"},
	{Name: "Resource_dependencies", Type: TypeStringArray, Default: []string{}, HasDefault: true, Tunable: TunableAnytime,
		Description: "resources that must be online before this one starts (strong)"},
	{Name: "Resource_dependencies_weak", Type: TypeStringArray, Default: []string{}, HasDefault: true, Tunable: TunableAnytime,
		Description: "resources whose start is waited for (ordering only)"},
	{Name: "Resource_dependencies_restart", Type: TypeStringArray, Default: []string{}, HasDefault: true, Tunable: TunableAnytime,
		Description: "strong dependencies whose restart restarts this resource"},
	{Name: "Resource_dependencies_offline_restart", Type: TypeStringArray, Default: []string{}, HasDefault: true, Tunable: TunableAnytime,
		Description: "restart dependencies that also take this resource offline while they are offline"},
	{Name: "Network_resources_used", Type: TypeStringArray, Default: []string{}, HasDefault: true, Tunable: TunableAnytime,
		Description: "network resources (logical hostnames) the resource uses"},
	{Name: "R_description", Type: TypeString, Default: []string{""}, HasDefault: true, Tunable: TunableAnytime,
		Description: "free text"},
}

// methodTimeout is the spec of a declared method's timeout property.
func methodTimeout(method string) PropSpec {
	return PropSpec{Name: TimeoutProp(method), Type: TypeInt, Default: []string{"3600"}, HasDefault: true,
		Min: intp(1), Tunable: TunableAnytime, Description: "seconds the " + method + " method may run"}
}

// systemSpec returns the base spec of a system property a type may
// declare (a conditional one, a method timeout, or one of the always
// present ones), by name in any case.
func systemSpec(name string, methods map[string]string) (PropSpec, bool) {
	up := strings.ToUpper(name)
	if p, ok := conditionalProps[up]; ok {
		return p, true
	}
	for _, p := range alwaysProps {
		if strings.EqualFold(p.Name, name) {
			return p, true
		}
	}
	if m, ok := strings.CutSuffix(up, "_TIMEOUT"); ok && IsMethod(m) {
		if _, declared := methods[m]; declared {
			return methodTimeout(m), true
		}
	}
	return PropSpec{}, false
}

// Query-only resource properties, read with scha_resource_get but never set.
var queryOnlyProps = []string{"Type", "Type_version", "On_off_switch", "Monitored_switch",
	"Resource_state", "Status", "Num_resource_restarts", "Num_rg_restarts", "Resource_project_name"}

// IsQueryOnly reports whether a resource property can only be read.
func IsQueryOnly(name string) bool {
	for _, q := range queryOnlyProps {
		if strings.EqualFold(q, name) {
			return true
		}
	}
	return false
}

// GroupSchema is the schema of resource group properties.
var GroupSchema = Schema{
	{Name: "Nodelist", Type: TypeStringArray, Default: []string{}, HasDefault: true, Tunable: TunableAnytime,
		Description: "nodes that may host the group, most preferred first (empty: every node)"},
	{Name: "Maximum_primaries", Type: TypeInt, Default: []string{"1"}, HasDefault: true, Min: intp(1), Tunable: TunableAnytime,
		Description: "most nodes the group may be online on at once"},
	{Name: "Desired_primaries", Type: TypeInt, Default: []string{"1"}, HasDefault: true, Min: intp(0), Tunable: TunableAnytime,
		Description: "nodes the group should be online on"},
	{Name: "Failback", Type: TypeBool, Default: []string{"FALSE"}, HasDefault: true, Tunable: TunableAnytime,
		Description: "move back to a more preferred node when it returns"},
	{Name: "Pingpong_interval", Type: TypeInt, Default: []string{"3600"}, HasDefault: true, Min: intp(0), Tunable: TunableAnytime,
		Description: "seconds a node that failed to start the group, or gave it over, is avoided"},
	{Name: "RG_dependencies", Type: TypeStringArray, Default: []string{}, HasDefault: true, Tunable: TunableAnytime,
		Description: "groups to start before this one"},
	{Name: "RG_affinities", Type: TypeStringArray, Default: []string{}, HasDefault: true, Tunable: TunableAnytime,
		Description: "+rg, ++rg, -rg, --rg: weak or strong positive or negative affinities"},
	{Name: "Auto_start_on_new_cluster", Type: TypeBool, Default: []string{"TRUE"}, HasDefault: true, Tunable: TunableAnytime,
		Description: "bring the group online when the cluster starts"},
	{Name: "Implicit_network_dependencies", Type: TypeBool, Default: []string{"TRUE"}, HasDefault: true, Tunable: TunableAnytime,
		Description: "resources depend on the group's network resources"},
	{Name: "Pathprefix", Type: TypeString, Default: []string{""}, HasDefault: true, Tunable: TunableAnytime,
		Description: "directory where the group's resources keep administrative files"},
	{Name: "RG_description", Type: TypeString, Default: []string{""}, HasDefault: true, Tunable: TunableAnytime,
		Description: "free text"},
}

func intp(n int) *int { return &n }
