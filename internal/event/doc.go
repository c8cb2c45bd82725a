// Package event is steady's system event framework, the counterpart of
// Solaris syseventd: typed events, a durable local journal, subscriptions,
// script subscribers with syseventadm macros, and kernel uevent ingestion.
//
// An event has a class and subclass (EC_dr / ESC_dr_ap_state_change), a
// publisher, the node, a time, typed attributes, and a sequence number
// that the node's journal assigns and never reuses.
//
// Who calls what:
//
//	j, _ := event.OpenJournal(event.JournalOptions{Dir: dir})   // agent, once
//	bus, _ := event.NewBus(j, node, registry)                    // agent, once
//	pmf := bus.Publisher("steady:pmf")                            // each component
//	seq, err := pmf.Publish(ctx, "EC_pmf", "ESC_pmf_started", attrs)
//	sub := bus.Subscribe(afterSeq, event.Filter{Class: "EC_pmf"}) // readers
//	ev, err := sub.Next(ctx)
//
// Publish returns after the event is written and fdatasync'ed, so an
// acknowledged event survives a crash of the agent or of the machine.
// Concurrent publishers share disk syncs (group commit). Readers never slow
// publishers: a subscription is a cursor over the journal, and one that falls
// behind reads from disk. Journal, Bus, Subscribers and UeventListener are
// safe for concurrent use; a Subscription belongs to one goroutine.
package event
