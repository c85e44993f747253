package cekatsim

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// convAnswer is a decoded GET /api/conversations answer.
type convAnswer struct {
	items []map[string]any
	next  *nextCursor
}

func decodeConversations(t *testing.T, body []byte) convAnswer {
	t.Helper()
	var raw struct {
		Success  *bool            `json:"success"`
		Data     []map[string]any `json:"data"`
		Metadata map[string]json.RawMessage
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("conversations answer: %v: %.300s", err, body)
	}
	if raw.Success == nil || !*raw.Success || raw.Data == nil {
		t.Fatalf("conversations answer without success/data: %.300s", body)
	}
	nc, ok := raw.Metadata["next_cursor"]
	if !ok {
		t.Fatalf("metadata.next_cursor missing: %.300s", body)
	}
	a := convAnswer{items: raw.Data}
	if string(nc) != "null" {
		a.next = &nextCursor{}
		if err := json.Unmarshal(nc, a.next); err != nil || a.next.CursorID == "" || a.next.CursorTS == "" {
			t.Fatalf("next_cursor %s: %v", nc, err)
		}
	}
	return a
}

func (e *env) conversations(q url.Values) convAnswer {
	e.t.Helper()
	a := e.get("/api/conversations?" + q.Encode())
	if a.err != nil || a.status != 200 {
		e.t.Fatalf("GET /api/conversations?%s: %d %v %.300s", q.Encode(), a.status, a.err, a.body)
	}
	return decodeConversations(e.t, a.body)
}

// walkConversations pages the list to its end, calling between after every
// page but the last; it returns the items in the order listed.
func walkConversations(t *testing.T, e *env, q url.Values, between func(page int)) []map[string]any {
	t.Helper()
	q = cloneQuery(q)
	var items []map[string]any
	for page := 0; ; page++ {
		if page > 20000 {
			t.Fatal("the walk does not end")
		}
		a := e.conversations(q)
		items = append(items, a.items...)
		if a.next == nil {
			return items
		}
		if len(a.items) == 0 {
			t.Fatalf("page %d is empty but has a next cursor", page)
		}
		q.Set("cursor_id", a.next.CursorID)
		q.Set("cursor_ts", a.next.CursorTS)
		if between != nil {
			between(page)
		}
	}
}

func cloneQuery(q url.Values) url.Values {
	out := url.Values{}
	for k, v := range q {
		out[k] = slices.Clone(v)
	}
	return out
}

func ids(items []map[string]any) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i], _ = it["id"].(string)
	}
	return out
}

func liveIDs(s *Server) []string {
	var out []string
	for _, c := range s.ConversationTruth() {
		out = append(out, c.ID)
	}
	return out
}

var orders = []ConversationOrder{OrderActivity, OrderCreated, OrderID}

// TestConversationWalks pages the list under each order and limit, with and
// without live traffic during the walk: every conversation that existed when
// the walk began is listed exactly once, and nothing created later is.
func TestConversationWalks(t *testing.T) {
	for _, order := range orders {
		for _, limit := range []int{1, 7, 100} {
			for _, live := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/limit=%d/live=%v", order, limit, live), func(t *testing.T) {
					o := Options{Seed: 11, Conversations: 60, MeanMessages: 8, ConversationOrder: order}
					if live {
						o.LiveRate, o.LiveNewConversationRate = 0.5, 0.2
					}
					e := newEnv(t, o)
					for range 5 { // conversations created at run time are listed too
						e.sim.AddConversation()
					}
					rng := rand.New(rand.NewPCG(uint64(limit), 7))
					before := liveIDs(e.sim)
					var atStart []string // what existed when the first page was served
					var between func(int)
					if live {
						between = func(page int) {
							if atStart == nil {
								atStart = liveIDs(e.sim)
							}
							// messages for conversations not listed yet move them to
							// the top of the activity order; new conversations start
							all := e.sim.ConversationIDs()
							for range 3 {
								e.sim.AddMessages(all[rng.IntN(len(all))], 1+rng.IntN(3))
							}
							if page%3 == 0 {
								e.sim.AddConversation()
							}
							e.sim.Advance(time.Duration(rng.IntN(600)) * time.Second)
						}
					}
					q := url.Values{"limit": {fmt.Sprint(limit)}}
					got := ids(walkConversations(t, e, q, between))
					if atStart == nil {
						atStart = liveIDs(e.sim)
					}
					seen := map[string]bool{}
					for _, id := range got {
						if seen[id] {
							t.Fatalf("%s listed twice", id)
						}
						seen[id] = true
					}
					for _, id := range before {
						if !seen[id] {
							t.Fatalf("%s existed before the walk and was not listed (%d listed of %d)", id, len(got), len(before))
						}
					}
					for _, id := range got {
						if !slices.Contains(atStart, id) {
							t.Fatalf("%s listed although created after the first page", id)
						}
					}
					if !live && len(got) != len(before) {
						t.Fatalf("%d listed, %d exist", len(got), len(before))
					}
					if !live { // the next walk lists everything that exists now
						if now, again := liveIDs(e.sim), ids(walkConversations(t, e, url.Values{"limit": {"100"}}, nil)); !sameSet(now, again) {
							t.Fatalf("a second walk listed %d of %d", len(again), len(now))
						}
					}
				})
			}
		}
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestConversationOrder checks each order against the truth, and that
// cursor_ts is the last item's sort time, without a zone.
func TestConversationOrder(t *testing.T) {
	for _, order := range orders {
		t.Run(string(order), func(t *testing.T) {
			e := newEnv(t, Options{Seed: 12, Conversations: 40, MeanMessages: 6, Shape: ShapeReal, ConversationOrder: order})
			ids := e.sim.ConversationIDs()
			e.sim.AddMessages(ids[7], 2) // a live message: newest activity
			added := e.sim.AddConversation()
			truth := map[string]TruthConversation{}
			for _, c := range e.sim.ConversationTruth() {
				truth[c.ID] = c
			}
			key := func(id string) time.Time {
				c := truth[id]
				if order == OrderActivity && c.LastMessageAt != nil {
					return *c.LastMessageAt
				}
				return c.CreatedAt
			}
			var want []string
			for id := range truth {
				want = append(want, id)
			}
			slices.SortFunc(want, func(a, b string) int {
				if order != OrderID {
					if c := key(b).Compare(key(a)); c != 0 {
						return c
					}
				}
				return strings.Compare(a, b)
			})
			q := url.Values{"limit": {"7"}}
			var got []string
			for {
				a := e.conversations(q)
				got = append(got, idsOf(a.items)...)
				if a.next == nil {
					break
				}
				last := got[len(got)-1]
				if wantTS := key(last).UTC().Format("2006-01-02T15:04:05.000"); a.next.CursorTS != wantTS {
					t.Fatalf("cursor_ts %q, want the last item's sort time %q", a.next.CursorTS, wantTS)
				}
				if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}$`).MatchString(a.next.CursorTS) {
					t.Fatalf("cursor_ts %q", a.next.CursorTS)
				}
				q.Set("cursor_id", a.next.CursorID)
				q.Set("cursor_ts", a.next.CursorTS)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("order %s:\n got %v\nwant %v", order, got, want)
			}
			if order != OrderID && got[0] != added && (order == OrderCreated || got[0] != ids[7]) {
				t.Fatalf("the newest conversation or the one with a live message is not first: %s", got[0])
			}
		})
	}
}

func idsOf(items []map[string]any) []string { return ids(items) }

// TestConversationFilters: inbox_id (either form of the id) and stage_status,
// alone and together, give exactly the matching conversations.
func TestConversationFilters(t *testing.T) {
	for _, shape := range shapes {
		t.Run(string(shape), func(t *testing.T) {
			e := newEnv(t, Options{Seed: 13, Conversations: 80, MeanMessages: 5, Shape: shape})
			for range 6 {
				e.sim.AddConversation() // pending for a while
			}
			truth := e.sim.ConversationTruth()
			stages := map[string]int{}
			for _, c := range truth {
				stages[c.StageStatus]++
			}
			if stages[StagePending] == 0 || stages[StageAssigned] == 0 || stages[StageResolved] == 0 {
				t.Fatalf("stages %v: want every stage represented", stages)
			}
			for _, ib := range e.sim.inboxes {
				for _, stage := range []string{"", StagePending, StageAssigned, StageResolved} {
					served := e.sim.shapeID(ib.docID, ib.realID)
					var want []string
					for _, c := range truth {
						if c.InboxID == served && (stage == "" || c.StageStatus == stage) {
							want = append(want, c.ID)
						}
					}
					for _, asked := range []string{ib.docID, ib.realID} {
						q := url.Values{"inbox_id": {asked}, "limit": {"9"}}
						if stage != "" {
							q.Set("stage_status", stage)
						}
						items := walkConversations(t, e, q, nil)
						for _, it := range items {
							if it["inbox_id"] != served || (stage != "" && it["stage_status"] != stage) {
								t.Fatalf("filter %v listed %v", q, it)
							}
						}
						if !sameSet(ids(items), want) {
							t.Fatalf("filter %v: %d listed, want %d", q, len(items), len(want))
						}
					}
				}
			}
			for _, stage := range []string{StagePending, StageAssigned, StageResolved} {
				items := walkConversations(t, e, url.Values{"stage_status": {stage}, "limit": {"100"}}, nil)
				if len(items) != stages[stage] {
					t.Fatalf("stage %s: %d listed, want %d", stage, len(items), stages[stage])
				}
			}
			if a := e.conversations(url.Values{"inbox_id": {"no-such-inbox"}}); len(a.items) != 0 || a.next != nil {
				t.Fatalf("unknown inbox: %d items, next %v", len(a.items), a.next)
			}
			for _, bad := range []string{"open", "RESOLVED", "resolved,pending"} {
				if a := e.get("/api/conversations?stage_status=" + url.QueryEscape(bad)); a.status != 400 {
					t.Fatalf("stage_status=%s: %d", bad, a.status)
				}
			}
		})
	}
}

var convTimeRe = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$`)

// TestConversationItemShape checks every field of every item against the
// field notes and the truth of the messages API.
func TestConversationItemShape(t *testing.T) {
	for _, shape := range shapes {
		t.Run(string(shape), func(t *testing.T) {
			e := newEnv(t, Options{Seed: 14, Conversations: 150, MeanMessages: 4, Shape: shape, OddIDs: shape == ShapeReal})
			e.sim.AddConversation()
			send := map[string]any{"inbox_id": e.sim.inboxes[0].docID, "to": "+6281111111111", "type": "text", "content": map[string]string{"text": "Halo dari API"}}
			if shape == ShapeReal {
				send = map[string]any{"conversation_id": e.sim.ConversationIDs()[3], "receiver": "+6281111111111", "message": "Halo dari API"}
			}
			body, _ := json.Marshal(send)
			if a := e.post("/messages/whatsapp", string(body)); a.status != 200 {
				t.Fatalf("send: %d %s", a.status, a.body)
			}
			e.sim.Advance(30 * time.Minute)
			newest := map[string]TruthMessage{}
			first := map[string]TruthMessage{}
			for _, m := range e.sim.Truth() {
				if _, ok := first[m.ConversationID]; !ok {
					first[m.ConversationID] = m
				}
				newest[m.ConversationID] = m
			}
			truth := map[string]TruthConversation{}
			for _, c := range e.sim.ConversationTruth() {
				truth[c.ID] = c
			}
			a := e.get("/api/conversations?limit=100")
			if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Fatalf("content type %q", ct)
			}
			items := walkConversations(t, e, url.Values{"limit": {"100"}}, nil)
			if !sameSet(ids(items), liveIDs(e.sim)) || len(items) != len(e.sim.ConversationIDs()) {
				t.Fatalf("%d listed, %d conversations", len(items), len(e.sim.ConversationIDs()))
			}
			keys := []string{"id", "inbox_id", "contact_id", "contact_name", "contact_phone", "platform_type", "inbox_name",
				"stage_status", "handled_by_id", "handled_by_name", "notes", "labels", "last_message", "first_message",
				"additional_data", "created_at", "resolved_at", "resolved_by_id", "resolved_by_name"}
			platforms := map[string]int{}
			for _, it := range items {
				var got []string
				for k := range it {
					got = append(got, k)
				}
				if !sameSet(got, keys) {
					t.Fatalf("item keys %v", got)
				}
				id := it["id"].(string)
				tc := truth[id]
				platforms[it["platform_type"].(string)]++
				if !regexp.MustCompile(`^[0-9]{8,15}$`).MatchString(it["contact_phone"].(string)) || it["contact_phone"] != tc.ContactPhone {
					t.Fatalf("contact_phone %v", it["contact_phone"])
				}
				if it["inbox_id"] != tc.InboxID || it["stage_status"] != tc.StageStatus || it["platform_type"] != tc.PlatformType {
					t.Fatalf("item %v, truth %+v", it, tc)
				}
				if !convTimeRe.MatchString(it["created_at"].(string)) || it["created_at"] != formatConvTime(tc.CreatedAt) {
					t.Fatalf("created_at %v, truth %v", it["created_at"], tc.CreatedAt)
				}
				resolved := it["stage_status"] == StageResolved
				for _, k := range []string{"resolved_at", "resolved_by_id", "resolved_by_name"} {
					if (it[k] != nil) != resolved {
						t.Fatalf("%s = %v with stage %v", k, it[k], it["stage_status"])
					}
				}
				if resolved && (!convTimeRe.MatchString(it["resolved_at"].(string)) || it["resolved_at"] != formatConvTime(*tc.ResolvedAt)) {
					t.Fatalf("resolved_at %v", it["resolved_at"])
				}
				if (it["handled_by_id"] == nil) != (it["stage_status"] == StagePending) || (it["handled_by_name"] == nil) != (it["handled_by_id"] == nil) {
					t.Fatalf("handled_by %v/%v with stage %v", it["handled_by_id"], it["handled_by_name"], it["stage_status"])
				}
				if _, ok := it["labels"].([]any); !ok {
					t.Fatalf("labels %v", it["labels"])
				}
				for _, l := range it["labels"].([]any) {
					if lm := l.(map[string]any); lm["id"] == "" || lm["name"] == "" {
						t.Fatalf("label %v", l)
					}
				}
				if _, ok := it["additional_data"].(map[string]any); !ok {
					t.Fatalf("additional_data %v", it["additional_data"])
				}
				if n, ok := it["notes"]; ok && n != nil {
					if _, isStr := n.(string); !isStr {
						t.Fatalf("notes %v", n)
					}
				}
				m, hasMsg := newest[id]
				if !hasMsg {
					if it["last_message"] != nil || it["first_message"] != nil {
						t.Fatalf("conversation without messages has %v / %v", it["last_message"], it["first_message"])
					}
					continue
				}
				lm := it["last_message"].(map[string]any)
				if lm["created_at"] != formatConvTime(m.Timestamp) || !convTimeRe.MatchString(lm["created_at"].(string)) || m.ID != tc.LastMessageID {
					t.Fatalf("last_message %v, newest message %s at %v", lm, m.ID, m.Timestamp)
				}
				if want := truthText(m); lm["message"] != want {
					t.Fatalf("last_message.message %q, want %q", lm["message"], want)
				}
				if want := truthText(first[id]); it["first_message"].(map[string]any)["message"] != want {
					t.Fatalf("first_message %v, want %q", it["first_message"], want)
				}
			}
			if platforms["whatsapp"] < len(items)*7/10 || len(platforms) < 3 {
				t.Fatalf("platforms %v", platforms)
			}
		})
	}
}

// truthText is what `message` shows of a message: its text or its caption.
func truthText(m TruthMessage) string {
	if m.Text != "" {
		return m.Text
	}
	return m.Caption
}

// TestConversationQuery: limit's default, clamp and errors, and cursors
// passed back other than verbatim.
func TestConversationQuery(t *testing.T) {
	e := newEnv(t, Options{Seed: 15, Conversations: 130, MeanMessages: 2})
	if a := e.conversations(nil); len(a.items) != DefaultConversationLimit || a.next == nil {
		t.Fatalf("default page: %d items", len(a.items))
	}
	if a := e.conversations(url.Values{"limit": {"1000"}}); len(a.items) != MaxConversationLimit || a.next == nil {
		t.Fatalf("limit=1000: %d items, want the maximum %d", len(a.items), MaxConversationLimit)
	}
	for _, bad := range []string{"0", "-1", "abc", ""} {
		if a := e.get("/api/conversations?limit=" + bad); a.status != 400 {
			t.Fatalf("limit=%q: %d", bad, a.status)
		}
	}
	a := e.conversations(url.Values{"limit": {"5"}})
	other, _ := New(Options{Seed: 16, Conversations: 130})
	cur := a.next
	for name, q := range map[string]string{
		"id only":              "cursor_id=" + url.QueryEscape(cur.CursorID),
		"ts only":              "cursor_ts=" + url.QueryEscape(cur.CursorTS),
		"ts with a zone":       "cursor_id=" + url.QueryEscape(cur.CursorID) + "&cursor_ts=" + url.QueryEscape(cur.CursorTS+"Z"),
		"ts reformatted":       "cursor_id=" + url.QueryEscape(cur.CursorID) + "&cursor_ts=" + url.QueryEscape(strings.Replace(cur.CursorTS, "T", " ", 1)),
		"id altered":           "cursor_id=" + url.QueryEscape(strings.ToUpper(cur.CursorID)) + "&cursor_ts=" + url.QueryEscape(cur.CursorTS),
		"a conversation id":    "cursor_id=" + url.QueryEscape(e.sim.ConversationIDs()[0]) + "&cursor_ts=" + url.QueryEscape(cur.CursorTS),
		"another server's":     "cursor_id=" + url.QueryEscape(other.cursorID(1, 0)) + "&cursor_ts=" + url.QueryEscape(cur.CursorTS),
		"a future snapshot":    "cursor_id=" + url.QueryEscape(e.sim.cursorID(1<<30, 0)) + "&cursor_ts=" + url.QueryEscape(cur.CursorTS),
		"no such conversation": "cursor_id=" + url.QueryEscape(e.sim.cursorID(5, 1<<20)) + "&cursor_ts=" + url.QueryEscape(cur.CursorTS),
	} {
		if a := e.get("/api/conversations?" + q); a.status != 400 {
			t.Fatalf("%s: %d %s", name, a.status, a.body)
		} else if !strings.Contains(string(a.body), "VALIDATION_ERROR") {
			t.Fatalf("%s: %s", name, a.body)
		}
	}
	// the same cursor may be asked again, and gives the same page
	q := url.Values{"limit": {"5"}, "cursor_id": {cur.CursorID}, "cursor_ts": {cur.CursorTS}}
	if x, y := e.conversations(q), e.conversations(q); !slices.Equal(ids(x.items), ids(y.items)) || len(x.items) != 5 {
		t.Fatal("the same cursor gave different pages")
	}
	// a walk with no conversations at all
	empty := newEnv(t, Options{Seed: 1})
	if a := empty.conversations(nil); len(a.items) != 0 || a.next != nil {
		t.Fatalf("empty server: %+v", a)
	}
	// the last page says so: exactly 10 conversations at the default limit
	ten := newEnv(t, Options{Seed: 1, Conversations: 10})
	if a := ten.conversations(nil); len(a.items) != 10 || a.next != nil {
		t.Fatalf("10 conversations: %d items, next %v", len(a.items), a.next)
	}
	if !strings.Contains(string(ten.get("/api/conversations").body), `"metadata":{"next_cursor":null}`) {
		t.Fatal("the last page does not carry next_cursor null")
	}
}

// TestConversationAuthLimitsAndCounts: the list takes the messages API's
// credentials, rate limit and faults, and is counted as "conversations".
func TestConversationAuthLimitsAndCounts(t *testing.T) {
	clock := newFakeClock()
	e := newEnv(t, Options{Seed: 17, Conversations: 5, Auth: AuthBearer, RatePerMinute: 3, RetryAfter: true, Now: clock.Now})
	path := "/api/conversations"
	for name, hdr := range map[string]map[string]string{
		"none":        nil,
		"wrong key":   {"Authorization": "Bearer nope"},
		"api_key":     {"api_key": e.sim.opts.APIKey},
		"backoffice":  {"Authorization": "Bearer " + e.sim.opts.BackofficeToken},
		"basic":       {"Authorization": "Basic " + e.sim.opts.APIKey},
		"empty token": {"Authorization": "Bearer "},
	} {
		if a := request(e.api.URL, "GET", path, hdr, ""); a.status != 401 {
			t.Fatalf("%s: %d", name, a.status)
		}
	}
	bearer := map[string]string{"Authorization": "Bearer " + e.sim.opts.APIKey}
	for i := range 3 {
		if a := request(e.api.URL, "GET", path, bearer, ""); a.status != 200 || a.header.Get("X-RateLimit-Limit") != "3" {
			t.Fatalf("request %d: %d %v", i, a.status, a.header)
		}
	}
	if a := request(e.api.URL, "GET", path, bearer, ""); a.status != 429 || a.header.Get("Retry-After") == "" {
		t.Fatalf("4th request in the minute: %d %v", a.status, a.header)
	}
	c := e.sim.Counts()
	if c.Endpoint(EndpointConversations) != 10 || c.Status(EndpointConversations, 401) != 6 || c.Status(EndpointConversations, 200) != 3 ||
		c.Status(EndpointConversations, 429) != 1 || c.RateLimited != 1 {
		t.Fatalf("counts %+v", c)
	}
	// the minute is shared with the messages API
	clock.Add(time.Minute)
	for range 3 {
		request(e.api.URL, "GET", listPath(e.sim.ConversationIDs()[0]), bearer, "")
	}
	if a := request(e.api.URL, "GET", path, bearer, ""); a.status != 429 {
		t.Fatalf("after three list calls: %d", a.status)
	}

	f := newEnv(t, Options{Seed: 17, Conversations: 5, Fault5xx: 1})
	if a := f.get(path); a.status < 500 {
		t.Fatalf("Fault5xx=1: %d", a.status)
	}
	if f.sim.Counts().Endpoint(EndpointConversations) != 1 {
		t.Fatalf("counts %+v", f.sim.Counts())
	}
}

// TestConversationsDeletedAndAdded: a deleted conversation disappears, also
// in the middle of a walk; one added at run time is listed by the next walk,
// served by the messages API, and first in the activity and created orders.
func TestConversationsDeletedAndAdded(t *testing.T) {
	e := newEnv(t, Options{Seed: 18, Conversations: 30, MeanMessages: 5})
	all := e.sim.ConversationIDs()
	if a := e.deleteConvs(e.backofficeHeader(), all[2], all[3]); a.status != 200 {
		t.Fatalf("delete: %d %s", a.status, a.body)
	}
	items := walkConversations(t, e, url.Values{"limit": {"4"}}, nil)
	if len(items) != 28 || slices.Contains(ids(items), all[2]) || slices.Contains(ids(items), all[3]) {
		t.Fatalf("after deleting two of 30: %d listed", len(items))
	}
	// deleted during a walk: conversations not listed yet disappear, the rest
	// is listed once
	var gone, walked []string
	q := url.Values{"limit": {"4"}}
	for page := 0; ; page++ {
		a := e.conversations(q)
		walked = append(walked, ids(a.items)...)
		if a.next == nil {
			break
		}
		if page == 1 {
			for _, id := range liveIDs(e.sim) {
				if !slices.Contains(walked, id) && len(gone) < 3 {
					gone = append(gone, id)
				}
			}
			if a := e.deleteConvs(e.backofficeHeader(), gone...); a.status != 200 {
				t.Fatalf("delete: %d", a.status)
			}
		}
		q.Set("cursor_id", a.next.CursorID)
		q.Set("cursor_ts", a.next.CursorTS)
	}
	if len(gone) != 3 || len(intersect(gone, walked)) != 0 || !sameSet(walked, liveIDs(e.sim)) {
		t.Fatalf("walk during deletions listed %d: %v (deleted %v)", len(walked), walked, gone)
	}

	id := e.sim.AddConversation()
	if id == "" || !slices.Contains(e.sim.ConversationIDs(), id) {
		t.Fatalf("AddConversation gave %q", id)
	}
	p := decodePage(t, e.get(listPath(id)).body)
	if len(p.items) != 1 {
		t.Fatalf("the new conversation holds %d messages", len(p.items))
	}
	for _, order := range []ConversationOrder{OrderActivity, OrderCreated} {
		e.sim.opts.ConversationOrder = order
		a := e.conversations(url.Values{"limit": {"1"}})
		if len(a.items) != 1 || a.items[0]["id"] != id || a.items[0]["stage_status"] != StagePending || a.items[0]["last_message"] == nil {
			t.Fatalf("order %s: first item %v, want the new conversation, pending", order, a.items)
		}
	}
	var added map[string]string
	b := e.post("/_sim/add-conversation", "")
	if json.Unmarshal(b.body, &added) != nil || !slices.Contains(e.sim.ConversationIDs(), added["conversation_id"]) {
		t.Fatalf("/_sim/add-conversation: %d %s", b.status, b.body)
	}
	var truth []TruthConversation
	if err := json.Unmarshal(e.get("/_sim/conversations").body, &truth); err != nil || len(truth) != len(liveIDs(e.sim)) {
		t.Fatalf("/_sim/conversations: %v, %d", err, len(truth))
	}
	if c := e.sim.Counts(); c.Endpoint(EndpointConversations) == 0 || c.Total != c.Endpoint(EndpointConversations)+c.Endpoint(EndpointList)+c.Endpoint(EndpointDelete)+c.Endpoint(EndpointSend)+c.Endpoint(EndpointDetail) {
		t.Fatalf("counts %+v", c)
	}
}

func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// TestConversationStagesProgress: conversations are taken, resolved after
// their last message, and reopened by a new one, as the clock advances.
func TestConversationStagesProgress(t *testing.T) {
	e := newEnv(t, Options{Seed: 19, Conversations: 50, MeanMessages: 5})
	ids := make([]string, 20)
	for i := range ids {
		ids[i] = e.sim.AddConversation()
	}
	stageOf := func(id string) TruthConversation {
		for _, c := range e.sim.ConversationTruth() {
			if c.ID == id {
				return c
			}
		}
		t.Fatalf("%s gone", id)
		return TruthConversation{}
	}
	for _, id := range ids {
		if st := stageOf(id).StageStatus; st != StagePending {
			t.Fatalf("a new conversation is %s", st)
		}
	}
	e.sim.Advance(3 * 24 * time.Hour)
	count := map[string]int{}
	var resolved string
	for _, id := range ids {
		c := stageOf(id)
		count[c.StageStatus]++
		if c.StageStatus == StageResolved {
			resolved = id
			if c.ResolvedAt == nil || c.ResolvedAt.Before(*c.LastMessageAt) || c.ResolvedAt.After(e.sim.Now()) {
				t.Fatalf("resolved at %v, last message %v", c.ResolvedAt, c.LastMessageAt)
			}
		}
	}
	if count[StageResolved] == 0 || count[StagePending] == 20 {
		t.Fatalf("three days on: %v", count)
	}
	e.sim.AddMessages(resolved, 1)
	if c := stageOf(resolved); c.StageStatus != StageAssigned || c.ResolvedAt != nil {
		t.Fatalf("a new message leaves the conversation %s, resolved at %v", c.StageStatus, c.ResolvedAt)
	}
}

func TestConversationOptions(t *testing.T) {
	for _, o := range []Options{
		{ConversationOrder: "newest"},
		{LiveNewConversationRate: 1.5},
		{LiveNewConversationRate: -0.1},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	s, err := New(Options{})
	if err != nil || s.opts.ConversationOrder != OrderActivity {
		t.Fatalf("default order %q, %v", s.opts.ConversationOrder, err)
	}
}
