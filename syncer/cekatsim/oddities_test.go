package cekatsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// itemConv is the conversation_id of a raw list item.
func itemConv(raw json.RawMessage) string {
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return ""
	}
	c, _ := m["conversation_id"].(string)
	return c
}

func TestOddIDs(t *testing.T) {
	for _, shape := range shapes {
		t.Run(string(shape), func(t *testing.T) {
			e := newEnv(t, Options{Seed: 21, MessageCounts: []int{0, 1, 9, 130}, Shape: shape, OddIDs: true})
			truth := truthByConv(e.sim)
			convs := e.sim.ConversationIDs()

			// Every id holds something to escape, and together they hold
			// every character the mode promises.
			var all strings.Builder
			for _, c := range convs {
				all.WriteString(c)
				if url.PathEscape(c) == c && url.QueryEscape(c) == c {
					t.Errorf("conversation id %q needs no escaping", c)
				}
				if c != strings.TrimSpace(c) || strings.HasPrefix(c, "#") {
					t.Errorf("conversation id %q would not survive a conversations file", c)
				}
			}
			for _, ms := range truth {
				for _, m := range ms {
					all.WriteString(m.ID)
				}
			}
			for _, want := range []string{"'", "/", "?", "%", "#", " ", "ü", "日"} {
				if !strings.Contains(all.String(), want) {
					t.Errorf("no id holds %q", want)
				}
			}

			for _, conv := range convs {
				// The list: conversation_id and before query-escaped once.
				got := walkFollowing(t, e, conv, 7, 100)
				var ids []string
				for _, raw := range got.items {
					ids = append(ids, itemID(raw))
				}
				var want []string
				for _, m := range truth[conv] {
					want = append(want, m.ID)
				}
				if got.hasMore || !slices.Equal(sortedCopy(ids), sortedCopy(want)) || len(ids) != len(want) {
					t.Fatalf("%q: walked %d ids, truth has %d", conv, len(ids), len(want))
				}
				// A before cursor escaped twice is not a message of the conversation.
				if len(want) > 1 {
					bad := "/messages?conversation_id=" + url.QueryEscape(conv) + "&before=" + url.QueryEscape(url.QueryEscape(want[1]))
					if a := e.get(bad); a.status != http.StatusBadRequest {
						t.Errorf("before escaped twice: %d, want 400", a.status)
					}
				}
			}

			for _, ms := range truth {
				for _, m := range ms {
					// The detail: the id path-escaped once is found.
					body := e.mustGet("/messages/"+url.PathEscape(m.ID), http.StatusOK)
					data, _ := body["data"].(map[string]any)
					if data["id"] != m.ID || data["conversation_id"] != m.ConversationID {
						t.Fatalf("detail of %q served id %q conversation %q", m.ID, data["id"], data["conversation_id"])
					}
					// Escaped twice, it names no message.
					if twice := url.PathEscape(url.PathEscape(m.ID)); twice != url.PathEscape(m.ID) {
						if a := e.get("/messages/" + twice); a.status != http.StatusNotFound {
							t.Errorf("detail of %q escaped twice (%s): %d, want 404", m.ID, twice, a.status)
						}
					}
					// A '/' sent raw splits the id: 404 in the API's envelope.
					if strings.Contains(m.ID, "/") {
						raw := strings.ReplaceAll(url.PathEscape(m.ID), "%2F", "/")
						a := e.get("/messages/" + raw)
						if a.status != http.StatusNotFound {
							t.Errorf("detail of %q with a raw slash (%s): %d, want 404", m.ID, raw, a.status)
						} else {
							checkErrorEnvelope(t, a)
						}
					}
				}
			}

			// A send replying to an odd id, into a conversation with an odd id.
			last := truth[convs[3]][len(truth[convs[3]])-1]
			payload, _ := json.Marshal(map[string]any{"conversation_id": convs[3], "receiver": last.RecipientPhone + last.SenderPhone,
				"message": "ok", "media_type": "text"})
			if a := e.post("/messages/whatsapp", string(payload)); a.status != http.StatusOK {
				t.Fatalf("send to %q: %d %s", convs[3], a.status, a.body)
			}
			payload, _ = json.Marshal(map[string]any{"inbox_id": "inbox_x", "to": truth[convs[2]][0].SenderPhone, "type": "text",
				"content": map[string]string{"text": "re"}, "reply_to": truth[convs[2]][3].ID})
			if a := e.post("/messages/whatsapp", string(payload)); a.status != http.StatusOK {
				t.Fatalf("send replying to %q: %d %s", truth[convs[2]][3].ID, a.status, a.body)
			}

			// The delete takes odd conversation ids.
			a := e.deleteConvs(e.backofficeHeader(), convs[2])
			if a.status != http.StatusOK || !strings.Contains(string(a.body), `"deleted":1`) {
				t.Fatalf("delete %q: %d %s", convs[2], a.status, a.body)
			}
			if a := e.get(listPath(convs[2])); a.status != http.StatusNotFound {
				t.Errorf("list of deleted %q: %d", convs[2], a.status)
			}
		})
	}
}

func sortedCopy(xs []string) []string {
	out := slices.Clone(xs)
	slices.Sort(out)
	return out
}

// walked is what a walk following pagination.before saw.
type walked struct {
	items   []json.RawMessage // every item of every page, in the order served
	cursors []string          // the before cursors sent, in order
	hasMore bool              // the last answer's has_more (true when maxPages stopped the walk)
}

// walkFollowing pages through a conversation passing back pagination.before,
// for at most maxPages pages.
func walkFollowing(t *testing.T, e *env, conv string, limit, maxPages int) walked {
	t.Helper()
	var w walked
	before := ""
	for range maxPages {
		params := []string{"limit", strconv.Itoa(limit)}
		if before != "" {
			params = append(params, "before", before)
			w.cursors = append(w.cursors, before)
		}
		a := e.get(listPath(conv, params...))
		if a.err != nil || a.status != http.StatusOK {
			t.Fatalf("list %q before %q: %v %d %.300s", conv, before, a.err, a.status, a.body)
		}
		p := decodePage(t, a.body)
		w.items = append(w.items, p.items...)
		w.hasMore = p.hasMore
		if !p.hasMore {
			break
		}
		before = p.before
	}
	return w
}

func TestCursorCycles(t *testing.T) {
	counts := []int{0, 2, 3, 40, 250, 9}
	for _, shape := range shapes {
		for _, limit := range []int{1, 2, 7, 100} {
			t.Run(fmt.Sprintf("%s/limit=%d", shape, limit), func(t *testing.T) {
				e := newEnv(t, Options{Seed: 5, MessageCounts: counts, Shape: shape, CursorCycleConversations: 2})
				convs := e.sim.ConversationIDs()
				cycles := e.sim.CursorCycles()
				// the first two conversations with at least three messages
				if len(cycles) != 2 || cycles[0].ConversationID != convs[2] || cycles[1].ConversationID != convs[3] ||
					cycles[0].Cut != 0 || cycles[1].Cut != 19 {
					t.Fatalf("cycles %+v", cycles)
				}
				truth := truthByConv(e.sim)
				for _, cy := range cycles {
					ms := truth[cy.ConversationID]
					if cy.A != ms[cy.Cut+1].ID || cy.B != ms[cy.Cut+2].ID || cy.A == cy.B {
						t.Fatalf("cycle %+v: A and B are not the messages above the cut", cy)
					}
					for _, m := range ms {
						if m.Unlisted != (m.Position < cy.Cut) {
							t.Fatalf("message %d of a conversation cut at %d: unlisted %v", m.Position, cy.Cut, m.Unlisted)
						}
					}
					pages := (len(ms)-cy.Cut)/limit + 8
					w := walkFollowing(t, e, cy.ConversationID, limit, pages)
					if !w.hasMore {
						t.Fatalf("%s: a cycling walk ended", cy.ConversationID)
					}
					// The cursors end in A, B, A, B, ...: a cycle of two steps.
					i := slices.Index(w.cursors, cy.A)
					if i < 0 || len(w.cursors)-i < 4 {
						t.Fatalf("%s: cursors %v never settle on A=%s", cy.ConversationID, w.cursors, cy.A)
					}
					for j, c := range w.cursors[i:] {
						if want := []string{cy.A, cy.B}[j%2]; c != want {
							t.Fatalf("%s: cursor %d after A is %s, want %s (cursors %v)", cy.ConversationID, j, c, want, w.cursors)
						}
					}
					// Every message from the cut up is listed, none below.
					seen := map[string]bool{}
					for _, raw := range w.items {
						seen[itemID(raw)] = true
					}
					for _, m := range ms {
						if seen[m.ID] == m.Unlisted {
							t.Errorf("%s: message %d (unlisted %v) seen %v", cy.ConversationID, m.Position, m.Unlisted, seen[m.ID])
						}
					}
					// The detail still serves the unlisted messages.
					if cy.Cut > 0 {
						e.mustGet("/messages/"+url.PathEscape(ms[0].ID), http.StatusOK)
					}
				}
				// Other conversations walk to their end.
				for _, i := range []int{1, 4, 5} {
					w := walkFollowing(t, e, convs[i], limit, counts[i]/limit+2)
					if w.hasMore || len(w.items) != counts[i] {
						t.Errorf("%s: %d items, has_more %v; want %d and the end", convs[i], len(w.items), w.hasMore, counts[i])
					}
				}
				for _, m := range e.sim.Truth() {
					if m.Unlisted && m.ConversationID != convs[3] {
						t.Errorf("message %s of %s flagged unlisted", m.ID, m.ConversationID)
					}
				}
			})
		}
	}
}

func TestCursorCyclesSurviveLiveTraffic(t *testing.T) {
	e := newEnv(t, Options{Seed: 8, MessageCounts: []int{30}, CursorCycleConversations: 1})
	cy := e.sim.CursorCycles()[0]
	e.sim.AddMessages(cy.ConversationID, 12)
	w := walkFollowing(t, e, cy.ConversationID, 5, 30)
	if !w.hasMore || w.cursors[len(w.cursors)-1] != cy.A && w.cursors[len(w.cursors)-1] != cy.B {
		t.Fatalf("after new messages the walk no longer cycles between A and B: %v", w.cursors)
	}
	if n := len(e.sim.Truth()); n != 42 {
		t.Fatalf("truth has %d messages", n)
	}
}

func TestForeignItems(t *testing.T) {
	for _, shape := range shapes {
		t.Run(string(shape), func(t *testing.T) {
			o := Options{Seed: 17, MessageCounts: []int{60, 0, 25, 3}, Shape: shape, ForeignItemRate: 0.5}
			e := newEnv(t, o)
			truth := truthByConv(e.sim)
			byID := map[string]TruthMessage{}
			for _, m := range e.sim.Truth() {
				byID[m.ID] = m
			}
			strangers, pages := 0, 0
			for _, conv := range e.sim.ConversationIDs() {
				before := ""
				var own []string
				for {
					params := []string{"limit", "7"}
					if before != "" {
						params = append(params, "before", before)
					}
					path := listPath(conv, params...)
					a := e.get(path)
					if a.status != http.StatusOK {
						t.Fatalf("list: %d %s", a.status, a.body)
					}
					if again := e.get(path); string(again.body) != string(a.body) {
						t.Fatalf("the same page came back different:\n%s\n%s", a.body, again.body)
					}
					p := decodePage(t, a.body)
					pages++
					var mine []string
					foreign := 0
					for _, raw := range p.items {
						id, c := itemID(raw), itemConv(raw)
						if c == conv {
							mine = append(mine, id)
							continue
						}
						foreign++
						tm, ok := byID[id]
						if !ok || tm.ConversationID != c {
							t.Fatalf("stranger %s of %q is not a message of its own conversation in the truth", id, c)
						}
						// its detail names its own conversation
						body := e.mustGet("/messages/"+url.PathEscape(id), http.StatusOK)
						if d, _ := body["data"].(map[string]any); d["conversation_id"] != c {
							t.Fatalf("detail of stranger %s: conversation %v", id, d["conversation_id"])
						}
					}
					if foreign > 1 || (foreign == 1 && len(mine) == 0) {
						t.Fatalf("page with %d strangers and %d own items", foreign, len(mine))
					}
					strangers += foreign
					if len(mine) > 0 && p.before != mine[0] {
						t.Fatalf("pagination.before %s is not the oldest own item %s", p.before, mine[0])
					}
					own = append(mine, own...)
					if !p.hasMore {
						break
					}
					before = p.before
				}
				var want []string
				for _, m := range truth[conv] {
					want = append(want, m.ID)
				}
				if !slices.Equal(own, want) {
					t.Fatalf("%s: own items %d, truth %d", conv, len(own), len(want))
				}
			}
			if strangers == 0 || strangers == pages {
				t.Fatalf("%d strangers in %d pages at rate 0.5", strangers, pages)
			}

			// Rate 1: every non-empty page has one; the truth is unchanged.
			o.ForeignItemRate = 1
			e1 := newEnv(t, o)
			for _, conv := range e1.sim.ConversationIDs() {
				p := decodePage(t, e1.mustGetRaw(listPath(conv)))
				n := 0
				for _, raw := range p.items {
					if itemConv(raw) != conv {
						n++
					}
				}
				if want := min(1, len(truth[conv])); n != want {
					t.Errorf("%s at rate 1: %d strangers, want %d", conv, n, want)
				}
			}
			if !slices.EqualFunc(e1.sim.Truth(), e.sim.Truth(), func(a, b TruthMessage) bool { return a.ID == b.ID && a.ConversationID == b.ConversationID }) {
				t.Error("foreign items changed the truth")
			}
		})
	}
}

func (e *env) mustGetRaw(path string) []byte {
	e.t.Helper()
	a := e.get(path)
	if a.err != nil || a.status != http.StatusOK {
		e.t.Fatalf("GET %s: %v %d %.300s", path, a.err, a.status, a.body)
	}
	return a.body
}

func TestForeignItemsWithoutPagination(t *testing.T) {
	e := newEnv(t, Options{Seed: 2, MessageCounts: []int{10, 10}, NoPagination: true, ForeignItemRate: 1})
	conv := e.sim.ConversationIDs()[0]
	p := decodePage(t, e.mustGetRaw(listPath(conv)))
	foreign := 0
	for _, raw := range p.items {
		if itemConv(raw) != conv {
			foreign++
		}
	}
	if len(p.items) != 11 || foreign != 1 || p.hasPag {
		t.Fatalf("%d items, %d strangers, pagination %v", len(p.items), foreign, p.hasPag)
	}
}

func TestOdditiesAreDeterministic(t *testing.T) {
	o := Options{Seed: 4, MessageCounts: []int{12, 40, 5}, OddIDs: true, CursorCycleConversations: 1, ForeignItemRate: 0.4, Shape: ShapeReal}
	var answers [2][]string
	for i := range answers {
		e := newEnv(t, o)
		for _, conv := range e.sim.ConversationIDs() {
			for _, raw := range walkFollowing(t, e, conv, 4, 20).items {
				answers[i] = append(answers[i], string(raw))
			}
		}
	}
	if !slices.Equal(answers[0], answers[1]) {
		t.Fatal("two simulators with the same seed answered differently")
	}
}

func TestOdditiesOptionsValidation(t *testing.T) {
	for _, o := range []Options{{CursorCycleConversations: -1}, {ForeignItemRate: -0.1}, {ForeignItemRate: 1.5}} {
		if _, err := New(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}
