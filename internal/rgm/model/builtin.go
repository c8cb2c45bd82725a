package model

import "time"

// ProcessType is the name of the built-in generic data service: a command
// run under the process monitor, with an optional probe.
const ProcessType = "steady.Process"

// BuiltinTypes returns the types steady provides without registration.
func BuiltinTypes() []*ResourceType {
	props := append(Schema(nil), alwaysProps...)
	props = append(props,
		PropSpec{Name: "Start_timeout", Type: TypeInt, Default: []string{"60"}, HasDefault: true, Min: intp(1), Tunable: TunableAnytime,
			Description: "seconds the command may take to start"},
		PropSpec{Name: "Stop_timeout", Type: TypeInt, Default: []string{"60"}, HasDefault: true, Min: intp(1), Tunable: TunableAnytime,
			Description: "seconds between the stop signal and SIGKILL"},
		PropSpec{Name: "Validate_timeout", Type: TypeInt, Default: []string{"30"}, HasDefault: true, Min: intp(1), Tunable: TunableAnytime,
			Description: "seconds the checks of a change may take"},
		conditionalProps["RETRY_COUNT"], conditionalProps["RETRY_INTERVAL"],
		conditionalProps["THOROUGH_PROBE_INTERVAL"], conditionalProps["PROBE_TIMEOUT"],
		PropSpec{Name: "Command", Type: TypeStringArray, Extension: true, Tunable: TunableWhenDisabled, ArrayMin: intp(1),
			Description: "the program (an absolute path) and its arguments"},
		PropSpec{Name: "Probe_command", Type: TypeString, Extension: true, Default: []string{""}, HasDefault: true, Tunable: TunableAnytime,
			Description: "a shell command run every Thorough_probe_interval; a non-zero exit is a failure (empty: no probe)"},
		PropSpec{Name: "Environment", Type: TypeStringArray, Extension: true, Default: []string{}, HasDefault: true, Tunable: TunableWhenDisabled,
			Description: "NAME=VALUE entries added to the environment"},
		PropSpec{Name: "Working_directory", Type: TypeString, Extension: true, Default: []string{"/"}, HasDefault: true, Tunable: TunableWhenDisabled,
			Description: "directory the command runs in"},
		PropSpec{Name: "User", Type: TypeString, Extension: true, Default: []string{"root"}, HasDefault: true, Tunable: TunableWhenDisabled,
			Description: "user the command and the probe run as"},
		PropSpec{Name: "Stop_signal", Type: TypeString, Extension: true, Default: []string{"TERM"}, HasDefault: true, Tunable: TunableAnytime,
			Description: "signal sent to stop the command"},
	)
	return []*ResourceType{{
		Name: ProcessType, Source: SourceBuiltin, Version: "1", Vendor: "steady",
		Description: "a command kept running by the process monitor, with an optional probe",
		Failover:    false, Props: props, Registered: time.Unix(0, 0).UTC(),
	}, logicalHostname()}
}

// LogicalHostnameType is the built-in floating address of a resource
// group (Sun Cluster's SUNW.LogicalHostname).
const LogicalHostnameType = "steady.LogicalHostname"

// logicalHostname is its type: the addresses, where they may go on each
// node, and a probe that follows the multipathing group. A failed probe
// gives the group over at once (Retry_count 0): restarting an address on
// a node whose group has no working interface cannot help.
func logicalHostname() *ResourceType {
	props := append(Schema(nil), alwaysProps...)
	retry := conditionalProps["RETRY_COUNT"]
	retry.Default = []string{"0"}
	probe := conditionalProps["THOROUGH_PROBE_INTERVAL"]
	probe.Default = []string{"2"}
	props = append(props,
		PropSpec{Name: "Start_timeout", Type: TypeInt, Default: []string{"30"}, HasDefault: true, Min: intp(1), Tunable: TunableAnytime,
			Description: "seconds the addresses may take to come up"},
		PropSpec{Name: "Stop_timeout", Type: TypeInt, Default: []string{"30"}, HasDefault: true, Min: intp(1), Tunable: TunableAnytime,
			Description: "seconds the addresses may take to go"},
		PropSpec{Name: "Validate_timeout", Type: TypeInt, Default: []string{"30"}, HasDefault: true, Min: intp(1), Tunable: TunableAnytime,
			Description: "seconds the checks of a change may take"},
		retry, conditionalProps["RETRY_INTERVAL"], probe, conditionalProps["PROBE_TIMEOUT"],
		PropSpec{Name: "HostnameList", Type: TypeStringArray, Extension: true, Tunable: TunableWhenDisabled, ArrayMin: intp(1),
			Description: "the addresses: ADDRESS/PREFIXLEN, ADDRESS or a host name (the prefix then comes from the group's addresses)"},
		PropSpec{Name: "NetIfList", Type: TypeStringArray, Extension: true, Default: []string{}, HasDefault: true, Tunable: TunableWhenDisabled,
			Description: "where the addresses go: IPMP groups or interfaces, each TARGET or TARGET@NODE; the first that the node has wins (empty: the group whose subnet holds the address)"},
	)
	return &ResourceType{
		Name: LogicalHostnameType, Source: SourceBuiltin, Version: "1", Vendor: "steady",
		Description: "floating IP addresses of a resource group, on the best working interface of an IPMP group",
		Failover:    true, Props: props, Registered: time.Unix(0, 0).UTC(),
	}
}
