package cekatsim

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// inboxIDs pages GET /api/messages from page 1 to the last and returns the
// ids in the order served, with the pagination of the first answer.
func inboxIDs(t *testing.T, e *env, query string) (ids []string, created []string, first map[string]any) {
	t.Helper()
	for page := 1; ; page++ {
		m := e.mustGet(fmt.Sprintf("/api/messages?limit=7&page=%d%s", page, query), 200)
		if first == nil {
			first = m["metadata"].(map[string]any)["pagination"].(map[string]any)
		}
		data := m["data"].([]any)
		if len(data) == 0 {
			return ids, created, first
		}
		for _, it := range data {
			item := it.(map[string]any)
			ids = append(ids, item["id"].(string))
			created = append(created, item["created_at"].(string))
		}
	}
}

func TestInboxListsEveryMessageOnceInEachOrder(t *testing.T) {
	for _, order := range []InboxOrder{InboxNewestFirst, InboxOldestFirst, InboxUnordered} {
		t.Run(string(order), func(t *testing.T) {
			e := newEnv(t, Options{Seed: 3, Conversations: 6, MeanMessages: 9, InboxOrder: order})
			truth := e.sim.Truth()
			ids, created, p := inboxIDs(t, e, "")
			if got, want := int(p["total_items"].(float64)), len(truth); got != want {
				t.Fatalf("total_items %d, want %d", got, want)
			}
			if got, want := int(p["total_page"].(float64)), (len(truth)+6)/7; got != want {
				t.Fatalf("total_page %d, want %d", got, want)
			}
			var want []string
			byID := map[string]time.Time{}
			for _, m := range truth {
				want = append(want, m.ID)
				byID[m.ID] = m.Timestamp
			}
			if !sameSet(ids, want) {
				t.Fatalf("listed %d ids, truth has %d; not the same set", len(ids), len(want))
			}
			sorted := true
			for i := 1; i < len(ids); i++ {
				a, b := byID[ids[i-1]], byID[ids[i]]
				switch order {
				case InboxNewestFirst:
					sorted = sorted && !b.After(a)
				case InboxOldestFirst:
					sorted = sorted && !a.After(b)
				}
			}
			if !sorted {
				t.Fatalf("%s: the ids are not in %s order of created_at: %v", order, order, created)
			}
			if order == InboxUnordered && !slices.IsSorted(ids) {
				t.Fatalf("unordered is by id; got %v", ids)
			}
		})
	}
}

func TestInboxPagesShiftUnderNewTraffic(t *testing.T) {
	e := newEnv(t, Options{Seed: 5, Conversations: 4, MeanMessages: 10})
	first := e.mustGet("/api/messages?limit=5&page=1", 200)["data"].([]any)
	conv := e.sim.ConversationIDs()[0]
	e.sim.Advance(time.Minute)
	e.sim.AddMessages(conv, 2)
	second := e.mustGet("/api/messages?limit=5&page=2", 200)["data"].([]any)
	// Two new messages on top move the last two of page 1 onto page 2.
	if a, b := first[3].(map[string]any)["id"], second[0].(map[string]any)["id"]; a != b {
		t.Fatalf("page 2 starts with %v, want page 1's fourth item %v shifted down", b, a)
	}
	newest := e.mustGet("/api/messages?limit=5&page=1", 200)["data"].([]any)
	if c := newest[0].(map[string]any)["conversation_id"]; c != conv {
		t.Fatalf("the newest item is of %v, want %v", c, conv)
	}
}

func TestInboxQueryAndAbsence(t *testing.T) {
	e := newEnv(t, Options{Seed: 7, Conversations: 3, MeanMessages: 5})
	conv := e.sim.ConversationIDs()[1]
	ids, _, _ := inboxIDs(t, e, "&conversation_id="+conv)
	var want []string
	for _, m := range e.sim.Truth() {
		if m.ConversationID == conv {
			want = append(want, m.ID)
		}
	}
	if !sameSet(ids, want) {
		t.Fatalf("conversation filter: %v, want %v", ids, want)
	}
	for _, q := range []string{"limit=0", "page=0", "page=x"} {
		if a := e.get("/api/messages?" + q); a.status != 400 {
			t.Errorf("%s: status %d, want 400", q, a.status)
		}
	}
	if n := len(e.mustGet("/api/messages?limit=500", 200)["data"].([]any)); n != min(MaxInboxLimit, len(e.sim.Truth())) {
		t.Errorf("limit above the maximum served %d items", n)
	}
	if c := e.sim.Counts().Endpoint(EndpointInbox); c == 0 {
		t.Errorf("requests not counted under %s", EndpointInbox)
	}
	off := newEnv(t, Options{Seed: 7, Conversations: 3, MeanMessages: 5, NoInboxList: true})
	if a := off.get("/api/messages?limit=10"); a.status != 404 {
		t.Fatalf("NoInboxList: status %d, want 404", a.status)
	}
}
