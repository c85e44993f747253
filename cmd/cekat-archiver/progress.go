package main

import (
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/cekat-archiver/cekat-archiver/syncer"
)

// progressSnapshot is what the progress display reads of a run.
type progressSnapshot struct {
	Phase                    string
	Conversations, Done      int64 // due conversations, and those whose new messages are done
	Found, Archived          int64 // new messages the list pages showed, and those archived
	Backlog, BackfillDone    int64 // conversations with older history to fetch, and those done
	Tracked, HistoryComplete int64 // tracked conversations, and those with their whole history archived
	Enriched, Waiting        int64 // messages enriched, and those archived from the list with their detail call queued
}

func snapshotOf(p *syncer.Progress) progressSnapshot {
	return progressSnapshot{Phase: p.Phase(), Conversations: p.Conversations.Load(), Done: p.Done.Load(),
		Found: p.Found.Load(), Archived: p.NewMessages.Load(), Backlog: p.Backlog.Load(), BackfillDone: p.BackfillDone.Load(),
		Tracked: p.Tracked.Load(), HistoryComplete: p.HistoryComplete.Load(), Enriched: p.Enriched.Load(), Waiting: p.Waiting.Load()}
}

// progressMeter turns a run's snapshots into a rate and an estimate of the
// time left in the phase: the phase's conversations still to do, at the
// pace of those done since the phase began. The backfill phase ends by
// sync.backfill_max_duration at the latest.
type progressMeter struct {
	start       time.Time
	backfillMax time.Duration
	perDay      int // api.rate_limit.per_day; 0 when the day is not capped
	phase       string
	phaseStart  time.Time
	phaseDone   int64 // the phase's done count when it began
}

// progressStats is a snapshot with its rate and estimate.
type progressStats struct {
	progressSnapshot
	Rate   float64       // messages archived a second since the run began
	ETA    time.Duration // left in the phase; negative when unknown
	perDay int
}

func (m *progressMeter) observe(s progressSnapshot, now time.Time) progressStats {
	if m.start.IsZero() {
		m.start = now
	}
	done, total := phaseCounts(s)
	if s.Phase != m.phase {
		m.phase, m.phaseStart, m.phaseDone = s.Phase, now, done
	}
	st := progressStats{progressSnapshot: s, ETA: -1, perDay: m.perDay}
	if d := now.Sub(m.start).Seconds(); d > 0 {
		st.Rate = float64(s.Archived) / d
	}
	if total < 0 {
		return st
	}
	if left := total - done; left <= 0 {
		st.ETA = 0
	} else if n, d := done-m.phaseDone, now.Sub(m.phaseStart); n > 0 && d > 0 {
		st.ETA = time.Duration(float64(d) / float64(n) * float64(left))
	}
	if s.Phase == "backfill" && m.backfillMax > 0 {
		limit := max(m.phaseStart.Add(m.backfillMax).Sub(now), 0)
		if st.ETA < 0 || st.ETA > limit {
			st.ETA = limit
		}
	}
	return st
}

// phaseCounts are the conversations done and to do in the phase; total is
// negative for a phase without a count (re-checks).
func phaseCounts(s progressSnapshot) (done, total int64) {
	switch s.Phase {
	case "new messages":
		return s.Done, s.Conversations
	case "backfill":
		return s.BackfillDone, s.Backlog
	}
	return 0, -1
}

// String is the progress line of a terminal.
func (st progressStats) String() string {
	var b strings.Builder
	b.WriteString(st.Phase)
	if done, total := phaseCounts(st.progressSnapshot); total >= 0 {
		fmt.Fprintf(&b, ": conversations %d/%d", done, total)
	}
	fmt.Fprintf(&b, "; messages %d/%d found; history complete %d/%d", st.Archived, st.Found, st.HistoryComplete, st.Tracked)
	if st.Enriched > 0 || st.Waiting > 0 {
		fmt.Fprintf(&b, "; enriched %d, waiting %d", st.Enriched, st.Waiting)
		if st.Waiting > 0 && st.perDay > 0 {
			fmt.Fprintf(&b, " (%.1f days at %d a day, at least)", float64(st.Waiting)/float64(st.perDay), st.perDay)
		}
	}
	fmt.Fprintf(&b, "; %.1f msg/s", st.Rate)
	if st.ETA >= 0 {
		fmt.Fprintf(&b, "; ETA %s", st.ETA.Round(time.Second))
	}
	return b.String()
}

// fields are the progress log line's.
func (st progressStats) fields() []zap.Field {
	f := []zap.Field{zap.String("phase", st.Phase), zap.Int64("conversations_done", st.Done),
		zap.Int64("conversations", st.Conversations), zap.Int64("messages_archived", st.Archived),
		zap.Int64("messages_found", st.Found), zap.Int64("backfill_done", st.BackfillDone),
		zap.Int64("backfill_conversations", st.Backlog), zap.Int64("history_complete", st.HistoryComplete),
		zap.Int64("tracked", st.Tracked), zap.Int64("enriched", st.Enriched), zap.Int64("waiting", st.Waiting),
		zap.Float64("messages_per_second", float64(int64(st.Rate*10))/10)}
	if st.ETA >= 0 {
		f = append(f, zap.Duration("eta", st.ETA.Round(time.Second)))
	}
	return f
}
