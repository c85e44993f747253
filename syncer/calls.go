package syncer

import "sync"

// detailCalls runs a run's detail calls on DetailConcurrency goroutines that
// live as long as the run. Handing a call to an idle one is what bounds the
// calls in flight across conversations. Long-lived goroutines keep their
// grown stacks: a goroutine per call would grow a fresh stack through the
// HTTP client and the decoder every time.
type detailCalls struct {
	work chan func()
	wg   sync.WaitGroup
}

func startDetailCalls(n int) *detailCalls {
	c := &detailCalls{work: make(chan func())}
	c.wg.Add(n)
	for range n {
		go func() {
			defer c.wg.Done()
			for f := range c.work {
				f()
			}
		}()
	}
	return c
}

// stop ends the goroutines once the calls handed to them have returned.
func (c *detailCalls) stop() {
	close(c.work)
	c.wg.Wait()
}
