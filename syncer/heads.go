package syncer

import (
	"sync"
	"time"

	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
)

// heads remembers, per conversation, the newest message that a complete
// walk from the top found, until the next listing of the conversations
// takes it. A conversation synced between listings (for a webhook event)
// then is not polled again only because the list now shows that message.
type heads struct {
	mu sync.Mutex
	m  map[string]headMessage
}

type headMessage struct {
	at   time.Time
	text string
}

func (h *heads) note(conv string, m cekat.Message) {
	text := m.Text
	if text == "" {
		text = m.Caption
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[string]headMessage{}
	}
	h.m[conv] = headMessage{at: m.Timestamp, text: text}
}

// shownBy says whether the list item's last message is the one noted for
// its conversation, and forgets the note. The times are compared to the
// second, since the two lists need not agree on precision, and the texts
// must be equal: a new message in the same second as the head, with the
// same text, whose webhook event was lost, would wait for the
// conversation's next message.
func (h *heads) shownBy(c cekat.Conversation) bool {
	h.mu.Lock()
	hm, ok := h.m[c.ID]
	delete(h.m, c.ID)
	h.mu.Unlock()
	return ok && c.LastMessageAt != nil && c.LastMessage == hm.text &&
		c.LastMessageAt.Truncate(time.Second).Equal(hm.at.Truncate(time.Second))
}
