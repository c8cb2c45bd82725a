package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/auth"
	"github.com/steady-ha/steady/internal/event"
)

const (
	defaultListLimit = 1000
	maxListLimit     = 10000
)

// eventQuery is the parsed query string of GET /v1/events.
type eventQuery struct {
	filter   event.Filter
	since    uint64
	hasSince bool
	last     int // newest N matching events; 0: not asked
	limit    int
	follow   bool
}

func parseEventQuery(r *http.Request) (eventQuery, error) {
	q := r.URL.Query()
	for k := range q {
		switch k {
		case "since", "class", "subclass", "last", "limit", "follow":
		default:
			return eventQuery{}, api.Errorf(api.CodeInvalid, "unknown query parameter %q (known: since, class, subclass, last, limit, follow)", k)
		}
	}
	eq := eventQuery{filter: event.Filter{Class: q.Get("class"), Subclass: q.Get("subclass")}, limit: defaultListLimit}
	var err error
	if v := q.Get("since"); v != "" {
		if eq.since, err = strconv.ParseUint(v, 10, 64); err != nil {
			return eq, api.Errorf(api.CodeInvalid, "since=%q is not a sequence number", v)
		}
		eq.hasSince = true
	}
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		if eq.since, err = strconv.ParseUint(id, 10, 64); err != nil {
			return eq, api.Errorf(api.CodeInvalid, "Last-Event-ID %q is not a sequence number", id)
		}
		eq.hasSince = true
	}
	if v := q.Get("last"); v != "" {
		if eq.last, err = strconv.Atoi(v); err != nil || eq.last < 1 || eq.last > maxListLimit {
			return eq, api.Errorf(api.CodeInvalid, "last=%q must be a number from 1 to %d", v, maxListLimit)
		}
		if eq.hasSince {
			return eq, api.Errorf(api.CodeInvalid, "give since or last, not both")
		}
	}
	if v := q.Get("limit"); v != "" {
		if eq.limit, err = strconv.Atoi(v); err != nil || eq.limit < 1 || eq.limit > maxListLimit {
			return eq, api.Errorf(api.CodeInvalid, "limit=%q must be a number from 1 to %d", v, maxListLimit)
		}
	}
	if v := q.Get("follow"); v != "" {
		if eq.follow, err = strconv.ParseBool(v); err != nil {
			return eq, api.Errorf(api.CodeInvalid, "follow=%q is not true or false", v)
		}
	}
	for _, n := range []string{eq.filter.Class, eq.filter.Subclass} {
		if n != "" && !api.ValidName(n) {
			return eq, api.Errorf(api.CodeInvalid, "%q is not a valid class or subclass name", n)
		}
	}
	return eq, nil
}

// getEvents lists events, or with follow=true streams them as server-sent
// events: "id: SEQ", "event: event", "data: JSON"; a "gap" event reports
// events removed by retention before they were sent.
func (s *Server) getEvents(w http.ResponseWriter, r *http.Request) error {
	if s.opts.Bus == nil {
		return api.Errorf(api.CodeUnavailable, "the event bus is not running")
	}
	eq, err := parseEventQuery(r)
	if err != nil {
		return err
	}
	j := s.opts.Bus.Journal()
	var first []event.Event
	after := eq.since
	if eq.last > 0 {
		if first, err = s.opts.Bus.Tail(eq.filter, eq.last); err != nil {
			return err
		}
		after = j.LastSeq()
		if len(first) > 0 {
			after = first[len(first)-1].Seq
		}
	} else if !eq.hasSince && eq.follow {
		after = j.LastSeq() // follow without a start: from now on
	}
	if eq.follow {
		return s.streamEvents(w, r, first, after, eq.filter)
	}
	list := api.EventList{Events: first, Next: after, FirstAvailable: j.FirstSeq()}
	if eq.last == 0 {
		sub := s.opts.Bus.Subscribe(after, eq.filter)
		top := j.LastSeq()
		for len(list.Events) < eq.limit && sub.Cursor() < top {
			ev, err := sub.NextAvailable()
			if errors.Is(err, event.ErrNoMore) {
				break
			}
			var gap *event.GapError
			if errors.As(err, &gap) {
				continue // FirstAvailable tells the client
			}
			if err != nil {
				return err
			}
			list.Events = append(list.Events, ev)
		}
		list.Next = sub.Cursor()
		if len(list.Events) == eq.limit {
			list.Next = list.Events[len(list.Events)-1].Seq
		}
	}
	if list.Events == nil {
		list.Events = []event.Event{}
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

func (s *Server) streamEvents(w http.ResponseWriter, r *http.Request, first []event.Event, after uint64, f event.Filter) error {
	flusher, ok := w.(http.Flusher)
	if !ok {
		return api.Errorf(api.CodeInternal, "streaming is not supported by this connection")
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	send := func(kind string, id uint64, v any) error {
		data, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if id > 0 {
			fmt.Fprintf(w, "id: %d\n", id)
		}
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", kind, data); err != nil {
			return err
		}
		flusher.Flush()
		return nil
	}
	for _, ev := range first {
		if err := send("event", ev.Seq, ev); err != nil {
			return nil
		}
	}
	flusher.Flush()
	sub := s.opts.Bus.Subscribe(after, f)
	ctx := r.Context()
	next := make(chan struct {
		ev  event.Event
		err error
	})
	go func() {
		for {
			ev, err := sub.Next(ctx)
			select {
			case next <- struct {
				ev  event.Event
				err error
			}{ev, err}:
			case <-ctx.Done():
				return
			}
			var gap *event.GapError
			if err != nil && !errors.As(err, &gap) {
				return
			}
		}
	}()
	tick := time.NewTicker(s.opts.KeepAlive)
	defer tick.Stop()
	for {
		select {
		case n := <-next:
			var gap *event.GapError
			switch {
			case errors.As(n.err, &gap):
				if send("gap", 0, map[string]uint64{"after": gap.After, "next": gap.Next}) != nil {
					return nil
				}
			case n.err != nil:
				return nil // the client went away or the agent is stopping
			default:
				if send("event", n.ev.Seq, n.ev) != nil {
					return nil
				}
			}
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil {
				return nil
			}
			flusher.Flush()
		case <-ctx.Done():
			return nil
		}
	}
}

func (s *Server) postEvent(w http.ResponseWriter, r *http.Request) error {
	if s.opts.Bus == nil {
		return api.Errorf(api.CodeUnavailable, "the event bus is not running")
	}
	var req api.PublishRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if err := req.Validate(); err != nil {
		return api.Errorf(api.CodeInvalid, "%v", err)
	}
	pr, _ := r.Context().Value(principalKey{}).(auth.Principal)
	seq, err := s.opts.Bus.Publisher("user:"+pr.Name()).Publish(r.Context(), req.Class, req.Subclass, req.Attrs)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, api.PublishResponse{Seq: seq})
	return nil
}

func (s *Server) listSubscribers(w http.ResponseWriter, r *http.Request) error {
	if s.opts.Subscribers == nil {
		return api.Errorf(api.CodeUnavailable, "script subscribers are not running")
	}
	writeJSON(w, http.StatusOK, s.opts.Subscribers.List())
	return nil
}

func (s *Server) addSubscriber(w http.ResponseWriter, r *http.Request) error {
	if s.opts.Subscribers == nil {
		return api.Errorf(api.CodeUnavailable, "script subscribers are not running")
	}
	var req api.SubscriberRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	sub, err := s.opts.Subscribers.Add(r.Context(), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, sub)
	return nil
}

func (s *Server) removeSubscriber(w http.ResponseWriter, r *http.Request) error {
	if s.opts.Subscribers == nil {
		return api.Errorf(api.CodeUnavailable, "script subscribers are not running")
	}
	if err := s.opts.Subscribers.Remove(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
