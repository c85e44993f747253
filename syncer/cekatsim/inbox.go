package cekatsim

// The New Open API's message list, GET /api/messages, read from the field
// notes ("Discovering conversations: the New Open API"):
//
//	GET /api/messages?limit=&page=&conversation_id=&inbox_id=
//	{"success":true,"data":[item...],"metadata":{"pagination":{"current_page":1,"current_items":100,"total_page":7,"total_items":650}}}
//
// Authentication, rate limits, latency and faults are those of the messages
// API; requests are counted under EndpointInbox. Items are always in the flat
// shape (the real item of render.go, statuses and updated_at included), with
// the ids of Options.Shape, whatever shape GET /messages serves.
//
// Query: limit (default DefaultInboxLimit; above MaxInboxLimit it is clamped,
// below 1 or not a number is a 400), page (from 1, default 1; below 1 or not
// a number is a 400; past the last page the data is empty), conversation_id
// (an unknown one lists nothing) and inbox_id (either id of an inbox).
//
// Pages are numbered over the list as it is when each page is served: a
// message that arrives between two requests shifts the pages after it (in
// newest-first order, every later page shows again the oldest item of the
// page before; in oldest-first order only the last page moves). Deleted
// conversations are not listed. Before each request, Options.LiveRate may add
// 1..3 messages to a random conversation and Options.LiveNewConversationRate
// may start a conversation, as before GET /api/conversations.
//
// Order (Options.InboxOrder; upstream does not document one):
// InboxNewestFirst (the default) is created_at descending, InboxOldestFirst
// ascending, ties broken by conversation and position alike in both;
// InboxUnordered is by message id, ascending as byte strings, which is no
// order of time. Options.NoInboxList answers 404, as a deployment without the
// endpoint does.

import (
	"bytes"
	"container/heap"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// EndpointInbox is the Counts name of GET /api/messages.
const EndpointInbox = "inbox"

// InboxOrder is the order of GET /api/messages.
type InboxOrder string

const (
	InboxNewestFirst InboxOrder = "newest"    // created_at descending (default)
	InboxOldestFirst InboxOrder = "oldest"    // created_at ascending
	InboxUnordered   InboxOrder = "unordered" // by message id: no order of time
)

// Limits of GET /api/messages.
const (
	DefaultInboxLimit = 10
	MaxInboxLimit     = 100
)

func (o *Options) normalizeInbox() error {
	switch o.InboxOrder {
	case "":
		o.InboxOrder = InboxNewestFirst
	case InboxNewestFirst, InboxOldestFirst, InboxUnordered:
	default:
		return errorf("unknown inbox order %q (want newest, oldest or unordered)", o.InboxOrder)
	}
	return nil
}

// inboxPos is one message of the merged list: its conversation's view, its
// position there and its time stamp.
type inboxPos struct {
	v   *view
	pos int
	ts  time.Time
	off int64 // seconds from message 0, for a generated message
}

// newer is the merged list's order, newest first.
func newer(a, b inboxPos) bool {
	if !a.ts.Equal(b.ts) {
		return a.ts.After(b.ts)
	}
	if a.v.c.idx != b.v.c.idx {
		return a.v.c.idx > b.v.c.idx
	}
	return a.pos > b.pos
}

type inboxHeap []inboxPos

func (h inboxHeap) Len() int           { return len(h) }
func (h inboxHeap) Less(i, j int) bool { return newer(h[i], h[j]) }
func (h inboxHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *inboxHeap) Push(x any)        { *h = append(*h, x.(inboxPos)) }
func (h *inboxHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// at is the message at pos of v, with the offset of a generated one
// computed from that of pos+1 when known (off >= 0) so that a walk down a
// conversation costs one gap a step.
func (s *Server) at(v *view, pos int, next *inboxPos) inboxPos {
	c := v.c
	if pos >= c.gen {
		return inboxPos{v: v, pos: pos, ts: time.Unix(v.extras[pos-c.gen].sec, 0).UTC()}
	}
	var off int64
	if next != nil && next.pos == pos+1 && next.pos < c.gen {
		off = next.off - s.gap(c, pos+1)
	} else {
		off = s.offset(c, pos)
	}
	return inboxPos{v: v, pos: pos, ts: s.genTime(c, pos, off), off: off}
}

// newestSlice returns the messages of views at places [a, b) of the merged
// list, newest first (place 0 is the newest message).
func (s *Server) newestSlice(views []*view, a, b int) []inboxPos {
	h := make(inboxHeap, 0, len(views))
	for _, v := range views {
		if v.n > 0 {
			h = append(h, s.at(v, v.n-1, nil))
		}
	}
	heap.Init(&h)
	var out []inboxPos
	for k := 0; k < b && h.Len() > 0; k++ {
		top := heap.Pop(&h).(inboxPos)
		if k >= a {
			out = append(out, top)
		}
		if top.pos > 0 {
			heap.Push(&h, s.at(top.v, top.pos-1, &top))
		}
	}
	return out
}

func (s *Server) handleInbox(w http.ResponseWriter, r *http.Request) {
	if s.opts.NoInboxList {
		s.writeError(w, http.StatusNotFound, "NOT_FOUND", "Cannot GET /api/messages", nil)
		return
	}
	q := r.URL.Query()
	limit, page := DefaultInboxLimit, 1
	for _, p := range []struct {
		name string
		dst  *int
	}{{"limit", &limit}, {"page", &page}} {
		if !q.Has(p.name) {
			continue
		}
		n, err := strconv.Atoi(q.Get(p.name))
		if err != nil || n < 1 {
			s.writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", p.name+" must be a positive integer", validation(p.name, "must be a positive integer"))
			return
		}
		*p.dst = n
	}
	limit = min(limit, MaxInboxLimit)
	convFilter, inboxFilter := q.Get("conversation_id"), q.Get("inbox_id")
	s.liveConversationTraffic()

	s.mu.RLock()
	var views []*view
	total := 0
	for _, c := range s.convs {
		if c.deleted || (convFilter != "" && c.id != convFilter) ||
			(inboxFilter != "" && inboxFilter != c.inbox.docID && inboxFilter != c.inbox.realID) {
			continue
		}
		v := s.currentLocked(c)
		views = append(views, &v)
		total += v.n
	}
	s.mu.RUnlock()

	pages := (total + limit - 1) / limit
	from := (page - 1) * limit // place of the page's first item in the order served
	var items []inboxPos
	if from < total {
		to := min(from+limit, total)
		switch s.opts.InboxOrder {
		case InboxOldestFirst:
			items = s.newestSlice(views, total-to, total-from)
			slices.Reverse(items)
		case InboxUnordered:
			items = s.idOrder(views, from, to)
		default:
			items = s.newestSlice(views, from, to)
		}
	}

	var buf bytes.Buffer
	buf.WriteString(`{"success":true,"data":[`)
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for i, it := range items {
		if i > 0 {
			buf.WriteByte(',')
		}
		m := s.messageAt(*it.v, it.pos)
		if m.malformed == malformedNotObject {
			buf.WriteString(m.badItem)
			continue
		}
		if err := enc.Encode(s.realItem(m, false)); err != nil {
			s.writeError(w, http.StatusInternalServerError, "INTERNAL_ERROR", err.Error(), nil)
			return
		}
		buf.Truncate(buf.Len() - 1)
	}
	p := struct {
		CurrentPage  int `json:"current_page"`
		CurrentItems int `json:"current_items"`
		TotalPage    int `json:"total_page"`
		TotalItems   int `json:"total_items"`
	}{page, len(items), pages, total}
	b, _ := json.Marshal(p)
	buf.WriteString(`],"metadata":{"pagination":`)
	buf.Write(b)
	buf.WriteString("}}\n")
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	_, _ = w.Write(buf.Bytes())
}

// idOrder returns places [a, b) of the messages of views ordered by id.
func (s *Server) idOrder(views []*view, a, b int) []inboxPos {
	type idPos struct {
		id string
		p  inboxPos
	}
	var all []idPos
	for _, v := range views {
		for pos := 0; pos < v.n; pos++ {
			all = append(all, idPos{s.messageID(v.c.idx, pos), inboxPos{v: v, pos: pos}})
		}
	}
	slices.SortFunc(all, func(x, y idPos) int {
		switch {
		case x.id < y.id:
			return -1
		case x.id > y.id:
			return 1
		}
		return 0
	})
	out := make([]inboxPos, 0, b-a)
	for _, x := range all[a:b] {
		out = append(out, x.p)
	}
	return out
}
