// Package rcm is the reconfiguration coordination manager: before a
// device, a CPU, a memory block, an interface or an address is taken away,
// every registered user of it is asked, and all of them are told what
// happened afterwards.
//
// The engine itself does no I/O. Clients (the Go modules under
// rcm/modules, the rcmscript runner under rcm/script) do their own, the
// in-flight list goes to a Store the caller provides, and every phase is
// reported to an Observer. So the engine runs the same in scenario tests
// as in the agent.
//
// Resource names form a tree split on "/": device names are absolute
// sysfs paths (/sys/devices/...), which makes a PCI function the ancestor
// of its interfaces and disks and a disk the ancestor of its partitions;
// abstract names (cpu/N, memory/N, net/IF, ip/ADDR, rg/NAME and the
// capacity names cpu and memory) live under a root of their own.
//
// The operations follow Solaris RCM (see docs/rcm.md): a request to
// offline or suspend runs in two phases, a query phase that asks every
// client of every resource in the subtree and collects every refusal, and
// a real phase only when all agreed; the resources stay locked until the
// initiator notifies online (undo) or remove. A client that maps one name
// onto others cascades the same operation onto the names it exports
// through the Handle it is given; the nested calls share the operation's
// sequence number with a greater depth and their answers join the
// caller's.
package rcm
