// Package modules holds the RCM clients built into the agent: each knows
// one kind of resource, registers the names in use now, and answers the
// engine's questions about them (the cpu and memory modules here; the
// filesys and ip modules follow the same pattern).
package modules
