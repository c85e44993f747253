package cekatsim

import (
	"bufio"
	"encoding/json"
	"io"
	"time"
)

// TruthMessage is the canonical value of a message that an exact archiver must
// end up with, as recoverable from what the simulator serves in its shape.
//
// Field mapping, documented shape: Direction = direction; Text = content.text;
// MediaURL = content.url; Caption = content.caption; Filename =
// content.filename; SenderName = sender.name; SenderPhone = sender.phone
// (inbound); SenderID = sender.user_id (outbound); SenderType is empty (not
// served); RecipientPhone = recipient.phone (detail, outbound); ReplyTo =
// reply_to; IsTemplate is false (not served); Timestamp = timestamp.
//
// Real shape: Direction is inbound for sent_by_type "user", outbound for
// "agent" and "system"; Type = media_type; `message` is Text for text and
// interactive messages and Caption for media (image, video, document, audio,
// sticker); MediaURL = media_url; Filename = additional_data.filename; ReplyTo
// = additional_data.reply_to; SenderName = sent_by_name; SenderID = sent_by
// (empty when null); SenderType = sent_by_type; SenderPhone =
// contact.phone_number for inbound messages; RecipientPhone =
// contact.phone_number for outbound ones; Timestamp = created_at.
//
// Status, DeliveredAt and ReadAt are the values at the current simulated time
// (served by the detail endpoint; the real list also serves status, and
// updated_at = StatusAt). Statuses by direction and shape:
//
//   - outbound: sent -> delivered -> read, or sent -> failed; a message may
//     stay sent or delivered for ever. Both shapes.
//   - inbound: received (documented) or delivered (real) until an agent opens
//     it, then read; about 10% are never read. Inbound messages have no
//     DeliveredAt and never fail.
//
// FailedAt and StatusAt are not served as such (FailedAt only as the real
// shape's updated_at of a failed message): they are the simulated times at
// which the statuses changed, for checking how soon an archiver follows them.
// StatusAt is when the current Status was reached: ReadAt, DeliveredAt or
// FailedAt for the status of that name, Timestamp for the first status (sent,
// received, or an inbound delivered). The whole history is therefore: the first
// status at Timestamp, then delivered at DeliveredAt (outbound), then read at
// ReadAt or failed at FailedAt, as far as they are set.
type TruthMessage struct {
	ID              string     `json:"id"`
	ConversationID  string     `json:"conversation_id"`
	Position        int        `json:"position"` // index in the conversation, oldest first
	Direction       string     `json:"direction"`
	Type            string     `json:"type"`
	Status          string     `json:"status"`
	Text            string     `json:"text"`
	MediaURL        string     `json:"media_url"`
	Caption         string     `json:"caption"`
	Filename        string     `json:"filename"`
	SenderName      string     `json:"sender_name"`
	SenderPhone     string     `json:"sender_phone"`
	SenderID        string     `json:"sender_id"`
	SenderType      string     `json:"sender_type"`
	RecipientPhone  string     `json:"recipient_phone"`
	ReplyTo         string     `json:"reply_to"`
	IsTemplate      bool       `json:"is_template"`
	Timestamp       time.Time  `json:"timestamp"`
	DeliveredAt     *time.Time `json:"delivered_at"`
	ReadAt          *time.Time `json:"read_at"`
	FailedAt        *time.Time `json:"failed_at"` // outbound messages that failed
	StatusAt        time.Time  `json:"status_at"` // when Status was reached (Timestamp for the first status)
	Malformed       bool       `json:"malformed"`
	MalformedReason string     `json:"malformed_reason,omitempty"` // missing_id, bad_timestamp or not_object
	// Unlisted marks the messages of a conversation whose cursors cycle
	// (Options.CursorCycleConversations) that lie below its cut: they exist
	// and the detail endpoint serves them, but no list page ever does. The
	// truth of a cycling conversation is all its messages; what a list walk
	// can reach, and so an exact archive, is the ones not Unlisted.
	Unlisted bool `json:"unlisted,omitempty"`
}

func (s *Server) truth(m *msg) TruthMessage {
	t := TruthMessage{
		ID:             m.id,
		ConversationID: m.c.id,
		Position:       m.pos,
		Direction:      direction(m),
		Type:           m.typ,
		Status:         m.status,
		Text:           m.text,
		MediaURL:       m.url,
		Caption:        m.caption,
		Filename:       m.filename,
		ReplyTo:        m.replyTo,
		Timestamp:      m.ts,
		DeliveredAt:    m.deliveredAt,
		ReadAt:         m.readAt,
		FailedAt:       m.failedAt,
	}
	t.StatusAt, _ = m.updatedAt()
	if m.inbound() {
		t.SenderName, t.SenderPhone = m.c.custName, m.c.phone
	} else {
		t.SenderName, t.RecipientPhone = m.agent.name, m.c.phone
	}
	if s.opts.Shape == ShapeReal {
		t.SenderType = senderType(m)
		t.IsTemplate = m.isTemplate
		if m.inbound() {
			t.SenderID = m.c.contactID
		} else {
			t.SenderID = m.agent.realID
		}
	} else if !m.inbound() {
		t.SenderID = m.agent.docID
	}
	if m.malformed != malformedNone {
		t.Malformed, t.MalformedReason = true, malformedReasons[m.malformed]
	}
	t.Unlisted = s.unlisted(m.c, m.pos)
	return t
}

// eachTruth walks every current message, conversation by conversation in
// creation order, oldest first.
func (s *Server) eachTruth(fn func(TruthMessage) error) error {
	s.mu.RLock()
	convs := s.convs
	s.mu.RUnlock()
	for _, c := range convs {
		v, ok := s.snapshot(c)
		if !ok {
			continue
		}
		if err := s.each(v, 0, v.n, func(m *msg) error { return fn(s.truth(m)) }); err != nil {
			return err
		}
	}
	return nil
}

// Truth returns the ground truth of all current (not deleted) messages,
// malformed ones included and flagged.
func (s *Server) Truth() []TruthMessage {
	var out []TruthMessage
	_ = s.eachTruth(func(t TruthMessage) error {
		out = append(out, t)
		return nil
	})
	return out
}

// WriteTruth writes Truth as JSON lines.
func (s *Server) WriteTruth(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	if err := s.eachTruth(func(t TruthMessage) error { return enc.Encode(t) }); err != nil {
		return err
	}
	return bw.Flush()
}
