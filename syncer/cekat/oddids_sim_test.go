package cekat_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
)

// TestOddIDsAgainstSimulator walks and enriches every message of a simulator
// whose ids hold ', /, ?, %, #, spaces and unicode, and deletes a
// conversation: the simulator decodes paths once and answers 404 to an id
// escaped twice, so every call must carry the ids exactly.
func TestOddIDsAgainstSimulator(t *testing.T) {
	for _, shape := range []cekatsim.Shape{cekatsim.ShapeDocumented, cekatsim.ShapeReal} {
		sim, err := cekatsim.New(cekatsim.Options{Seed: 3, MessageCounts: []int{1, 17, 120}, Shape: shape, OddIDs: true,
			BackofficeAuth: cekatsim.BackofficeAccessToken})
		if err != nil {
			t.Fatal(err)
		}
		api := httptest.NewServer(sim.Handler())
		defer api.Close()
		bo := httptest.NewServer(sim.BackofficeHandler())
		defer bo.Close()
		c, err := cekat.New(cekat.Options{BaseURL: api.URL, APIKey: cekatsim.DefaultAPIKey, BackofficeURL: bo.URL,
			BackofficeToken: cekatsim.DefaultBackofficeToken, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		truth := map[string]cekatsim.TruthMessage{}
		for _, m := range sim.Truth() {
			truth[m.ID] = m
		}
		seen := 0
		for _, conv := range sim.ConversationIDs() {
			before := ""
			for {
				page, err := c.ListMessages(ctx, conv, 7, before)
				if err != nil {
					t.Fatalf("%s: list %q before %q: %v", shape, conv, before, err)
				}
				for _, m := range page.Messages {
					want, ok := truth[m.ID]
					if !ok || m.ConversationID != conv || want.ConversationID != conv {
						t.Fatalf("%s: listed %q of %q, not in the truth of that conversation", shape, m.ID, m.ConversationID)
					}
					d, err := c.GetMessage(ctx, m.ID)
					if err != nil || d.ID != m.ID {
						t.Fatalf("%s: detail of %q: %q, %v", shape, m.ID, d.ID, err)
					}
					seen++
				}
				if !page.HasMore {
					break
				}
				before = page.Before
			}
		}
		if seen != len(truth) {
			t.Fatalf("%s: saw %d of %d messages", shape, seen, len(truth))
		}
		conv := sim.ConversationIDs()[1]
		res, err := c.DeleteConversations(ctx, []string{conv})
		if err != nil || res.Deleted != 1 || len(res.ConversationIDs) != 1 || res.ConversationIDs[0] != conv {
			t.Fatalf("%s: delete %q: %+v, %v", shape, conv, res, err)
		}
		if _, err := c.ListMessages(ctx, conv, 7, ""); cekat.KindOf(err) != cekat.KindPermanent {
			t.Fatalf("%s: list of deleted %q: %v", shape, conv, err)
		}
	}
}
