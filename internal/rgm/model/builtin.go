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
	}}
}
