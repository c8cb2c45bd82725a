// Package pmf is the process monitor facility: it runs commands under name
// tags, supervises each command and all its descendants, restarts it within
// a retry budget, and runs an action program when the budget is spent, as
// Sun Cluster's rpc.pmfd did for pmfadm(1M).
//
// A tag has failed only when its last process has exited: a daemon that
// forks and exits stays supervised through its children. Membership is
// kept by the kernel where possible: each tag lives in its own cgroup v2
// (the process is cloned straight into it), "populated 0" in cgroup.events
// is the failure, cgroup.kill stops it. Where no writable cgroup v2 exists,
// the agent falls back to its role as child subreaper plus the process
// group of the command and an environment marker (STEADY_PMF_TAG) that
// descendants inherit even when they start a new session.
//
// The agent may die; the services may not. Tags are persisted in the data
// directory and never stopped when the agent stops. A restarted agent
// re-adopts running tags through their cgroups (or markers) and restarts,
// per their policy, the tags whose processes died meanwhile.
//
// Who calls what: the agent builds one Manager (New) and closes it last
// among the parts that use it. The API server calls Start, Stop, Kill,
// Modify, Get and List on behalf of users; the resource group manager will
// call Start, Stop, Recover and Events from its own goroutines. All methods
// are safe for concurrent use. Window, the restart arithmetic, is a pure
// value type tested on its own.
package pmf
