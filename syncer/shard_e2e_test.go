package syncer_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/syncer"
	"github.com/cekat-archiver/cekat-archiver/syncer/archivetest"
	"github.com/cekat-archiver/cekat-archiver/syncer/budget"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
	"github.com/cekat-archiver/cekat-archiver/syncer/shard"
)

// shardHeader tells the test's server which shard sent a request.
const shardHeader = "X-Test-Shard"

type shardRequest struct {
	at    time.Time
	shard int
	path  string
	conv  string // the conversation a message list asks for
	msg   string // the message a detail call asks for
}

// shardLog records every request that reaches the simulator.
type shardLog struct {
	mu   sync.Mutex
	reqs []shardRequest
}

func (l *shardLog) add(r shardRequest) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reqs = append(l.reqs, r)
}

func (l *shardLog) take() []shardRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.reqs
	l.reqs = nil
	return out
}

type shardTransport struct {
	shard int
	next  http.RoundTripper
}

func (s shardTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(shardHeader, strconv.Itoa(s.shard))
	return s.next.RoundTrip(r)
}

// Three archivers share one workspace and one archive, with no
// coordinator: together they archive everything, each conversation is
// worked on by one shard only, and going to four shards moves about a
// quarter of the conversations, all to the new shard, and loses nothing.
func TestShardsShareTheWork(t *testing.T) {
	shardsShare(t, 0)
}

// TestShardsShareTheLimit is TestShardsShareTheWork under one API limit:
// the shards' requests stay within it (no 429). Its length is set by the
// limit (it must spend more than a minute's worth of the limit to show the
// shards share it): about two minutes.
func TestShardsShareTheLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("paced by a real per-minute limit: about two minutes")
	}
	shardsShare(t, 90)
}

// shardsShare runs three, then four shards; perMinute is the API key's
// limit, shared by the shards (0: none).
func shardsShare(t *testing.T, perMinute int) {
	counts := make([]int, 36)
	for i := range counts {
		counts[i] = 1 + i%2
	}
	sim, err := cekatsim.New(cekatsim.Options{Seed: 12, Shape: cekatsim.ShapeReal, MessageCounts: counts,
		RatePerMinute: perMinute, Start: time.Now().UTC().Truncate(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	log := &shardLog{}
	api := sim.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.Header.Get(shardHeader))
		if err != nil {
			http.Error(w, "no shard", http.StatusBadRequest)
			return
		}
		req := shardRequest{at: time.Now(), shard: n, path: r.URL.Path, conv: r.URL.Query().Get("conversation_id")}
		if id, ok := strings.CutPrefix(r.URL.Path, "/messages/"); ok {
			req.msg = id
		}
		log.add(req)
		api.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	ctx := context.Background()
	// One archive, one write buffer per process, as in a deployment.
	archives := archivetest.OpenShared(t, 4, sink.ArchiveOptions{BatchRows: 500, BatchInterval: time.Second})

	// Each run is a fresh process of each shard: its own limiter, taking
	// 1/count of the shared limit, as the configuration does by default.
	runShards := func(count int) []syncer.Summary {
		sums := make([]syncer.Summary, count)
		var wg sync.WaitGroup
		for i := range count {
			limit := perMinute
			if limit == 0 {
				limit = 1_000_000 // as good as none
			}
			lim, err := budget.New(budget.Options{PerMinute: limit / count})
			if err != nil {
				t.Fatal(err)
			}
			client, err := cekat.New(cekat.Options{BaseURL: srv.URL, APIKey: cekatsim.DefaultAPIKey, Limiter: lim,
				Location: jakarta(t), HTTPClient: &http.Client{Transport: shardTransport{i, http.DefaultTransport}}})
			if err != nil {
				t.Fatal(err)
			}
			e := syncer.New(client, archives[i], syncer.Options{
				Shard: shard.Shard{Index: i, Count: count},
				// The same configuration everywhere: every shard is told of
				// every conversation, and discovers them all.
				ConversationIDs: sim.ConversationIDs(), Discovery: &syncer.Discovery{API: client},
				RecheckWindow: 7 * 24 * time.Hour, Now: sim.Now, Logger: zaptest.NewLogger(t).Named("shard" + strconv.Itoa(i)),
			})
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
				defer cancel()
				sums[i] = e.Sync(ctx, nil)
			})
		}
		wg.Wait()
		for i, s := range sums {
			if err := s.Failure(); err != nil {
				t.Fatalf("shard %d of %d failed: %v %v", i, count, err, s.Errors)
			}
		}
		return sums
	}

	// checkRun checks who asked for what in one run of count shards.
	checkRun := func(count int, reqs []shardRequest) {
		t.Helper()
		convOf := map[string]string{}
		for _, m := range sim.Truth() {
			convOf[m.ID] = m.ConversationID
		}
		workedBy := map[string]map[int]bool{}
		for _, r := range reqs {
			conv := r.conv
			if r.msg != "" {
				conv = convOf[r.msg]
			}
			if conv == "" {
				continue // the conversation list, which every shard pages
			}
			if workedBy[conv] == nil {
				workedBy[conv] = map[int]bool{}
			}
			workedBy[conv][r.shard] = true
		}
		for conv, shards := range workedBy {
			if len(shards) != 1 || !shards[shard.Of(conv, count)] {
				t.Errorf("%d shards: conversation %s was worked on by shards %v, owner %d", count, conv, shards, shard.Of(conv, count))
			}
		}
		// The shared limit: no 429, and no 60 s span holds more requests
		// than it allows.
		most := 0
		for i := range reqs {
			n := 0
			for j := i; j < len(reqs) && reqs[j].at.Sub(reqs[i].at) < time.Minute; j++ {
				n++
			}
			most = max(most, n)
		}
		span := reqs[len(reqs)-1].at.Sub(reqs[0].at)
		t.Logf("%d shards: %d requests over %s, at most %d in a minute (the limit: %d); %d conversations worked on",
			count, len(reqs), span.Round(time.Second), most, perMinute, len(workedBy))
		if perMinute > 0 && most > perMinute {
			t.Errorf("%d shards: %d requests within a minute, over the shared limit of %d", count, most, perMinute)
		}
	}

	sums := runShards(3)
	reqs := log.take()
	checkRun(3, reqs)
	if perMinute > 0 && len(reqs) <= perMinute {
		t.Errorf("3 shards made %d requests: not more than a minute's worth of the limit, so they did not show they share it", len(reqs))
	}
	synced := 0
	for _, s := range sums {
		synced += s.Synced
	}
	if synced != len(counts) {
		t.Errorf("the three shards synced %d conversations between them, want each of the %d once", synced, len(counts))
	}
	h := &harness{t: t, sim: sim, archive: archives[0]}
	h.assertMatchesTruth()

	// Four shards: a quarter of the conversations move, all to the new
	// shard, which carries on from the shared state.
	moved := 0
	for _, id := range sim.ConversationIDs() {
		if from, to := shard.Of(id, 3), shard.Of(id, 4); from != to {
			moved++
			if to != 3 {
				t.Errorf("%s moved from shard %d to %d, not to the new shard", id, from, to)
			}
		}
	}
	t.Logf("3 -> 4 shards: %d of %d conversations moved", moved, len(counts))
	if moved < len(counts)/8 || moved > len(counts)*3/8 {
		t.Errorf("3 -> 4 shards moved %d of %d conversations, want about a quarter", moved, len(counts))
	}
	sim.Advance(20 * time.Minute) // statuses move, and their re-checks fall due
	for _, id := range sim.ConversationIDs() {
		sim.AddMessages(id, 1)
	}
	sums = runShards(4)
	checkRun(4, log.take())
	if sums[3].Synced != moved {
		t.Errorf("the new shard synced %d conversations; %d moved to it", sums[3].Synced, moved)
	}
	h.assertMatchesTruth()
	if c := sim.Counts(); c.RateLimited != 0 {
		t.Errorf("the simulator answered %d requests with 429", c.RateLimited)
	}
	if !slices.ContainsFunc(sums, func(s syncer.Summary) bool { return s.Rechecked > 0 }) {
		t.Error("no shard re-checked a status: the re-check sharding went untested")
	}
}
