package cekatsim

import (
	"bytes"
	"encoding/json"
)

// Documented (nested) shape.

type docContent struct {
	Text        string   `json:"text,omitempty"`
	URL         string   `json:"url,omitempty"`
	Caption     string   `json:"caption,omitempty"`
	Filename    string   `json:"filename,omitempty"`
	Latitude    *float64 `json:"latitude,omitempty"`
	Longitude   *float64 `json:"longitude,omitempty"`
	Name        string   `json:"name,omitempty"`
	Address     string   `json:"address,omitempty"`
	Buttons     []button `json:"buttons,omitempty"`
	ButtonReply *button  `json:"button_reply,omitempty"`
}

type docSender struct {
	Name   string `json:"name"`
	Phone  string `json:"phone,omitempty"`
	UserID string `json:"user_id,omitempty"`
}

type docRecipient struct {
	Phone string `json:"phone"`
}

type docItem struct {
	ID             string         `json:"id,omitempty"`
	ConversationID string         `json:"conversation_id"`
	Direction      string         `json:"direction"`
	Type           string         `json:"type"`
	Status         string         `json:"status,omitempty"`
	Content        docContent     `json:"content"`
	Sender         docSender      `json:"sender"`
	Recipient      *docRecipient  `json:"recipient,omitempty"`
	ReplyTo        string         `json:"reply_to,omitempty"`
	Timestamp      string         `json:"timestamp"`
	DeliveredAt    string         `json:"delivered_at,omitempty"`
	ReadAt         string         `json:"read_at,omitempty"`
	Metadata       map[string]any `json:"metadata,omitempty"`
}

func direction(m *msg) string {
	if m.inbound() {
		return "inbound"
	}
	return "outbound"
}

func (s *Server) docItem(m *msg, detail bool) docItem {
	it := docItem{
		ID:             m.id,
		ConversationID: m.c.id,
		Direction:      direction(m),
		Type:           m.typ,
		Content: docContent{
			Text: m.text, URL: m.url, Caption: m.caption, Filename: m.filename,
			Buttons: m.buttons, ButtonReply: m.reply,
		},
		ReplyTo:   m.replyTo,
		Timestamp: m.tsFmt.format(m.ts),
	}
	if m.loc != nil {
		it.Content.Latitude, it.Content.Longitude = &m.loc.Latitude, &m.loc.Longitude
		it.Content.Name, it.Content.Address = m.loc.Name, m.loc.Address
	}
	if m.inbound() {
		it.Sender = docSender{Name: m.c.custName, Phone: m.c.phone}
	} else {
		it.Sender = docSender{Name: m.agent.name, UserID: m.agent.docID}
	}
	if m.extraMeta {
		it.Metadata = map[string]any{"wa_message_id": m.waID, "channel": "whatsapp"}
	}
	if detail {
		it.Status = m.status
		if !m.inbound() {
			it.Recipient = &docRecipient{Phone: m.c.phone}
		}
		if m.deliveredAt != nil {
			it.DeliveredAt = m.delFmt.format(*m.deliveredAt)
		}
		if m.readAt != nil {
			it.ReadAt = m.readFmt.format(*m.readAt)
		}
	}
	if m.malformed == malformedNoID {
		it.ID = ""
	}
	if m.malformed == malformedTimestamp {
		it.Timestamp = m.badTS
	}
	return it
}

// Real (flat) shape.

type realContact struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	PhoneNumber string `json:"phone_number"`
}

type realInbox struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	PhoneNumber string `json:"phone_number"`
	Type        string `json:"type"`
}

type realItem struct {
	ID             string         `json:"id,omitempty"`
	Message        *string        `json:"message"`
	ConversationID string         `json:"conversation_id"`
	SentBy         *string        `json:"sent_by"`
	SentByName     string         `json:"sent_by_name"`
	SentByType     string         `json:"sent_by_type"`
	MediaType      string         `json:"media_type"`
	MediaURL       *string        `json:"media_url"`
	Status         string         `json:"status"`
	IsTemplate     bool           `json:"is_template"`
	CreatedAt      string         `json:"created_at"`
	UpdatedAt      string         `json:"updated_at"`
	DeliveredAt    string         `json:"delivered_at,omitempty"`
	ReadAt         string         `json:"read_at,omitempty"`
	AdditionalData map[string]any `json:"additional_data"`
	Contact        realContact    `json:"contact"`
	Inbox          realInbox      `json:"inbox"`
	Location       *location      `json:"location,omitempty"`
	Interactive    map[string]any `json:"interactive,omitempty"`
	Action         map[string]any `json:"action,omitempty"`
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func senderType(m *msg) string {
	switch m.kind {
	case kindUser:
		return "user"
	case kindSystem:
		return "system"
	}
	return "agent"
}

// realMessage is what the flat shape serves in `message`: the text for text
// and interactive messages, the caption for media.
func realMessage(m *msg) string {
	if m.text != "" {
		return m.text
	}
	return m.caption
}

func (s *Server) realItem(m *msg, detail bool) realItem {
	upd, updFmt := m.updatedAt()
	it := realItem{
		ID:             m.id,
		Message:        strPtr(realMessage(m)),
		ConversationID: m.c.id,
		SentByName:     m.c.custName,
		SentByType:     senderType(m),
		MediaType:      m.typ,
		MediaURL:       strPtr(m.url),
		Status:         m.status,
		IsTemplate:     m.isTemplate,
		CreatedAt:      m.tsFmt.format(m.ts),
		UpdatedAt:      updFmt.format(upd),
		AdditionalData: map[string]any{"wa_message_id": m.waID},
		Contact:        realContact{ID: m.c.contactID, Name: m.c.custName, PhoneNumber: m.c.phone},
		Inbox:          realInbox{ID: m.c.inbox.realID, Name: m.c.inbox.name, PhoneNumber: m.c.inbox.phone, Type: "whatsapp"},
		Location:       m.loc,
	}
	if m.inbound() {
		it.SentBy = &m.c.contactID
	} else {
		it.SentByName = m.agent.name
		it.SentBy = strPtr(m.agent.realID)
	}
	if m.replyTo != "" {
		it.AdditionalData["reply_to"] = m.replyTo
	}
	if m.filename != "" {
		it.AdditionalData["filename"] = m.filename
	}
	if m.extraMeta {
		it.AdditionalData["source"] = "whatsapp_cloud"
		it.AdditionalData["retry_count"] = 0
	}
	if len(m.buttons) > 0 {
		it.Interactive = map[string]any{"type": "button", "buttons": m.buttons}
	}
	if m.reply != nil {
		it.Interactive = map[string]any{"type": "button_reply", "button_reply": m.reply}
	}
	if m.actionType != "" {
		it.Action = map[string]any{"type": m.actionType, "agent_id": m.actionAgent}
	}
	if detail {
		if m.deliveredAt != nil {
			it.DeliveredAt = m.delFmt.format(*m.deliveredAt)
		}
		if m.readAt != nil {
			it.ReadAt = m.readFmt.format(*m.readAt)
		}
	}
	if m.malformed == malformedNoID {
		it.ID = ""
	}
	if m.malformed == malformedTimestamp {
		it.CreatedAt = m.badTS
	}
	return it
}

// appendItem appends the JSON of one message, as a list item or a detail.
func (s *Server) appendItem(buf *bytes.Buffer, m *msg, detail bool) error {
	if m.malformed == malformedNotObject {
		buf.WriteString(m.badItem)
		return nil
	}
	var v any
	if s.opts.Shape == ShapeReal {
		v = s.realItem(m, detail)
	} else {
		v = s.docItem(m, detail)
	}
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	buf.Truncate(buf.Len() - 1) // Encode's newline
	return nil
}
