package cekatsim

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Deletion is one request the back-office delete endpoint handled: the ids
// asked for, those it deleted (the ones its answer lists), and the status
// it answered. Requests refused before the handler (authentication, rate
// limit, Options.Fault5xx and the like) are not in the log; see Counts.
type Deletion struct {
	At      time.Time `json:"at"` // wall clock (Options.Now)
	Asked   []string  `json:"asked"`
	Deleted []string  `json:"deleted"`
	Status  int       `json:"status"`
}

// DeleteFault is a fault the back-office delete answers one request with
// (QueueDeleteFaults), to reproduce what the documentation leaves open:
// partial deletes, a refused token, throttling, a failing backend.
type DeleteFault struct {
	// Status, when set, answers this HTTP status in the API's error
	// envelope and deletes nothing: 401 or 403 (a bad token), 429, 5xx.
	Status int
	// RetryAfter is the Retry-After of a 429 (default one second).
	RetryAfter time.Duration
	// Keep, when Status is 0, is how many of the live ids asked for are
	// deleted (the first ones): the answer lists those only, and says
	// deleted = Keep. A partial delete.
	Keep int
}

// deletionLog is the delete endpoint's log and its queue of faults.
type deletionLog struct {
	mu     sync.Mutex
	log    []Deletion
	faults []DeleteFault
}

// Deletions returns the log of the back-office delete, oldest first.
func (s *Server) Deletions() []Deletion {
	s.deletions.mu.Lock()
	defer s.deletions.mu.Unlock()
	out := make([]Deletion, len(s.deletions.log))
	for i, d := range s.deletions.log {
		d.Asked, d.Deleted = slices.Clone(d.Asked), slices.Clone(d.Deleted)
		out[i] = d
	}
	return out
}

// QueueDeleteFaults makes the next delete requests that reach the handler
// answer with these faults, one each, in order.
func (s *Server) QueueDeleteFaults(faults ...DeleteFault) {
	s.deletions.mu.Lock()
	defer s.deletions.mu.Unlock()
	s.deletions.faults = append(s.deletions.faults, faults...)
}

// DeleteConversations deletes conversations as if someone else had, in the
// dashboard: not through the endpoint, not in the log. It returns the ids
// that were live.
func (s *Server) DeleteConversations(ids ...string) []string {
	return s.deleteLive(ids, -1)
}

// deleteLive deletes the live conversations among ids, at most keep of
// them (keep < 0: all), and returns those it deleted.
func (s *Server) deleteLive(ids []string, keep int) []string {
	deleted := []string{}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		c, ok := s.byID[id]
		if !ok || c.deleted || (keep >= 0 && len(deleted) >= keep) {
			continue
		}
		c.deleted = true
		if s.byPhone[c.phone] == c {
			delete(s.byPhone, c.phone)
		}
		deleted = append(deleted, id)
	}
	return deleted
}

// handleDeleteIDs deletes ids for the delete endpoint, or answers the
// queued fault, and logs the request. ok false: the fault was answered.
func (s *Server) handleDeleteIDs(w http.ResponseWriter, ids []string) (deleted []string, ok bool) {
	s.deletions.mu.Lock()
	var fault *DeleteFault
	if len(s.deletions.faults) > 0 {
		fault = &s.deletions.faults[0]
		s.deletions.faults = s.deletions.faults[1:]
	}
	s.deletions.mu.Unlock()
	entry := Deletion{At: s.opts.Now(), Asked: slices.Clone(ids), Deleted: []string{}, Status: http.StatusOK}
	defer func() {
		s.deletions.mu.Lock()
		s.deletions.log = append(s.deletions.log, entry)
		s.deletions.mu.Unlock()
	}()
	switch {
	case fault != nil && fault.Status != 0:
		entry.Status = fault.Status
		if fault.Status == http.StatusTooManyRequests {
			wait := fault.RetryAfter
			if wait <= 0 {
				wait = time.Second
			}
			w.Header().Set("Retry-After", strconv.FormatInt(int64((wait+time.Second-1)/time.Second), 10))
		}
		s.writeError(w, fault.Status, "SIMULATED_FAULT", http.StatusText(fault.Status), nil)
		return nil, false
	case fault != nil:
		entry.Deleted = s.deleteLive(ids, max(fault.Keep, 0))
	default:
		entry.Deleted = s.deleteLive(ids, -1)
	}
	return entry.Deleted, true
}

// deletionRoutes serves the log and the fault queue under /_sim/.
func (s *Server) deletionRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /_sim/deletions", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Deletions())
	})
	// POST /_sim/delete-faults with a JSON array of {"status", "retry_after" (a duration), "keep"}.
	mux.HandleFunc("POST /_sim/delete-faults", func(w http.ResponseWriter, r *http.Request) {
		var in []struct {
			Status     int    `json:"status"`
			RetryAfter string `json:"retry_after"`
			Keep       int    `json:"keep"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "want a JSON array of {status, retry_after, keep}"})
			return
		}
		faults := make([]DeleteFault, len(in))
		for i, f := range in {
			faults[i] = DeleteFault{Status: f.Status, Keep: f.Keep}
			if f.RetryAfter != "" {
				d, err := time.ParseDuration(f.RetryAfter)
				if err != nil {
					writeJSON(w, http.StatusBadRequest, map[string]string{"error": "retry_after: " + err.Error()})
					return
				}
				faults[i].RetryAfter = d
			}
		}
		s.QueueDeleteFaults(faults...)
		writeJSON(w, http.StatusOK, map[string]int{"queued": len(faults)})
	})
}
