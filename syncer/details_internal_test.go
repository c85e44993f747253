package syncer

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
)

type blockingAPI struct {
	API
	calls   atomic.Int64
	release chan struct{}
}

func (b *blockingAPI) GetMessage(_ context.Context, id string) (cekat.Message, error) {
	b.calls.Add(1)
	<-b.release
	return cekat.Message{ID: id, ConversationID: "c1"}, nil
}

// Two runs of one engine asking for the same message's detail at once, or
// within detailShareFor of each other, pay for one call; later, the status
// is asked for again.
func TestDetailCallsAreSharedBetweenRuns(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	api := &blockingAPI{release: make(chan struct{})}
	d := shareDetails(api, clock)
	var wg sync.WaitGroup
	got := make(chan cekat.Message, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := d.GetMessage(context.Background(), "m1")
			if err != nil {
				t.Error(err)
			}
			got <- m
		}()
	}
	// Both asks share the one call in flight before it is answered.
	for d.waiting("m1") < 2 {
		time.Sleep(time.Millisecond)
	}
	close(api.release)
	wg.Wait()
	close(got)
	for m := range got {
		if m.ConversationID != "c1" {
			t.Errorf("answer %+v", m)
		}
	}
	if _, err := d.GetMessage(context.Background(), "m1"); err != nil {
		t.Fatal(err)
	}
	if n := api.calls.Load(); n != 1 {
		t.Errorf("%d calls for two asks at once and one just after; want 1", n)
	}
	mu.Lock()
	now = now.Add(detailShareFor + time.Second)
	mu.Unlock()
	if _, err := d.GetMessage(context.Background(), "m1"); err != nil {
		t.Fatal(err)
	}
	if n := api.calls.Load(); n != 2 {
		t.Errorf("%d calls after the answer aged; want 2", n)
	}
}
