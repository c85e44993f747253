package cekatsim

// Bad answers a robust client has to survive (see Options.OddIDs,
// Options.CursorCycleConversations and Options.ForeignItemRate): ids that
// need careful escaping, list cursors that lead round in a cycle, and list
// pages holding a message of another conversation. Everything here is
// deterministic from the seed.

// Salts of the oddities, apart from the generator's salts in gen.go.
const (
	saltOddID      uint64 = 0x0dd1d0001
	saltForeign    uint64 = 0x0dd1d0002
	saltForeignPos uint64 = 0x0dd1d0003
)

// oddFragments are put in the middle of ids under Options.OddIDs: each holds
// characters that mean something in a URL path, a query, a fragment, JSON or
// a terminal, and a double escape or a double decode changes it. None is at
// either end of an id, so an id never starts with '#' or white space (a
// conversations file skips such lines and trims lines).
var oddFragments = [...]string{
	"q'1", "/", "a/b/", "?x=1&y=2", "100%", "%41", "%2F", "#top", " with space ",
	"+plus+", "ünïcödé", "日本語", "😀", ";,=:@", "..%2e", `"q"\`, "~!*()$", "[v]",
}

// oddify puts the fragment chosen by h into id after its first k bytes.
func oddify(id string, k int, h uint64) string {
	return id[:k] + oddFragments[h%uint64(len(oddFragments))] + id[k:]
}

// Where the fragment goes: after "msg_" and 8 hex digits, after "conv_" and 6,
// after the first group of a UUID.
const (
	oddMsgDocAt  = 12
	oddConvDocAt = 11
	oddUUIDAt    = 8
)

func (s *Server) oddAt(documented int) int {
	if s.opts.Shape == ShapeReal {
		return oddUUIDAt
	}
	return documented
}

// convID makes the served id of conversation ci from its plain id.
func (s *Server) convID(ci int, plain string) string {
	if !s.opts.OddIDs {
		return plain
	}
	return oddify(plain, s.oddAt(oddConvDocAt), s.hash3(ci, -1, saltOddID))
}

// plainMessageID recovers the plain id inside an odd message id; the caller
// checks the result by rendering the odd id again.
func (s *Server) plainMessageID(id string) (string, bool) {
	n := 36
	if s.opts.Shape != ShapeReal {
		n = 4 + 16
	}
	k := s.oddAt(oddMsgDocAt)
	if len(id) < n {
		return "", false
	}
	return id[:k] + id[len(id)-(n-k):], true
}

// CursorCycle describes a conversation whose list cursors cycle (see
// Options.CursorCycleConversations).
type CursorCycle struct {
	ConversationID string
	// Cut is the position (0 = oldest) of the oldest message the list
	// serves: messages below it are never listed (TruthMessage.Unlisted).
	Cut int
	// A and B are the message ids at positions Cut+1 and Cut+2: once the walk
	// reaches Cut, pagination.before is A, then B, then A again, for ever.
	A, B string
}

// chooseCycles picks the conversations whose cursors cycle: the first
// opts.CursorCycleConversations, in creation order, with at least three
// generated messages.
func (s *Server) chooseCycles() {
	s.cycleCut = map[int]int{}
	for _, c := range s.convs {
		if len(s.cycleCut) >= s.opts.CursorCycleConversations {
			break
		}
		if c.gen >= 3 {
			s.cycleCut[c.idx] = max(0, c.gen/2-1)
		}
	}
}

// CursorCycles lists the conversations whose list cursors cycle, in creation
// order.
func (s *Server) CursorCycles() []CursorCycle {
	s.mu.RLock()
	convs := s.convs
	s.mu.RUnlock()
	var out []CursorCycle
	for _, c := range convs {
		if p, ok := s.cycleCut[c.idx]; ok {
			out = append(out, CursorCycle{ConversationID: c.id, Cut: p, A: s.messageID(c.idx, p+1), B: s.messageID(c.idx, p+2)})
		}
	}
	return out
}

// unlisted tells whether the list never serves message pos of c.
func (s *Server) unlisted(c *convo, pos int) bool {
	p, ok := s.cycleCut[c.idx]
	return ok && pos < p
}

// cycle rewrites a list page of a cycling conversation. The page asked for
// is [start, end); cursor tells whether the request had a before cursor. A
// page that does not reach the cut is left alone. One that does is cut there
// (messages below the cut are never listed), says has_more, and points to A,
// or to B when it was the page before A: so a walk goes on ... -> A -> B ->
// A -> B for ever, whatever its limit, and every message from the cut up is
// listed.
func (s *Server) cycle(c *convo, start, end int, cursor bool) (newStart int, hasMore bool, before string, cycled bool) {
	p, ok := s.cycleCut[c.idx]
	if !ok || start > p {
		return start, false, "", false
	}
	before = s.messageID(c.idx, p+1)
	if cursor && end == p+1 {
		before = s.messageID(c.idx, p+2)
	}
	return min(max(start, p), end), true, before, true
}

// foreign returns the message of another conversation to serve in the list
// page [start, end) of c, and its index within the page, or nil. The choice
// depends on the seed, the conversation and end only, so the same page
// brings the same stranger. Empty pages get none, and malformed messages are
// not chosen (a stranger is always a well-formed message with its own
// conversation_id).
func (s *Server) foreign(c *convo, start, end int) (*msg, int) {
	if s.opts.ForeignItemRate <= 0 || start >= end || unit(s.hash3(c.idx, end, saltForeign)) >= s.opts.ForeignItemRate {
		return nil, 0
	}
	h := mix(s.hash3(c.idx, end, saltForeignPos))
	s.mu.RLock()
	convs := s.convs
	s.mu.RUnlock()
	for i := range convs {
		o := convs[(int(h%uint64(len(convs)))+i)%len(convs)]
		if o == c {
			continue
		}
		v, ok := s.snapshot(o)
		if !ok || v.n == 0 {
			continue
		}
		m := s.messageAt(v, int(mix(h)%uint64(v.n)))
		if m.malformed != malformedNone {
			return nil, 0
		}
		return m, int(mix(h^1) % uint64(end-start+1))
	}
	return nil, 0
}
