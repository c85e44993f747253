package syncer

import (
	"strings"
	"time"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
)

// transientPrefix starts the enrich_error of a message whose detail failed
// for a reason that may pass: it is enriched again later.
const transientPrefix = "transient: "

// rowFrom builds a message row from the list item and, when it was
// fetched, the detail answer, whose non-empty fields win.
func rowFrom(conv string, list cekat.Message, detail *cekat.Message, fetched time.Time) sink.MessageRow {
	m := list
	row := sink.MessageRow{
		ConversationID: conv, MessageID: list.ID, Direction: m.Direction, Type: m.Type, Status: m.Status,
		Text: m.Text, MediaURL: m.MediaURL, Caption: m.Caption, Filename: m.Filename,
		SenderName: m.SenderName, SenderPhone: m.SenderPhone, SenderID: m.SenderID, SenderType: m.SenderType,
		RecipientPhone: m.RecipientPhone, ReplyTo: m.ReplyTo, IsTemplate: m.IsTemplate,
		SentAt: m.Timestamp, DeliveredAt: m.DeliveredAt, ReadAt: m.ReadAt, UpdatedAt: m.UpdatedAt,
		Raw: string(list.Raw), FetchedAt: fetched, Version: uint64(fetched.UnixNano()),
	}
	var warnings []string
	warnings = append(warnings, list.Warnings...)
	if detail != nil {
		applyDetail(&row, *detail)
		warnings = append(warnings, detail.Warnings...)
	}
	row.SenderRole = sink.SenderRole(row.Direction, row.SenderType)
	if len(warnings) > 0 {
		row.EnrichError = "warning: " + strings.Join(warnings, "; ")
	}
	return row
}

// applyDetail lays a detail answer over a row: its non-empty fields win.
func applyDetail(row *sink.MessageRow, d cekat.Message) {
	pick := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	pickTime := func(dst **time.Time, v *time.Time) {
		if v != nil {
			*dst = v
		}
	}
	pick(&row.Direction, d.Direction)
	if d.Type != "unknown" {
		pick(&row.Type, d.Type)
	}
	pick(&row.Status, d.Status)
	pick(&row.Text, d.Text)
	pick(&row.MediaURL, d.MediaURL)
	pick(&row.Caption, d.Caption)
	pick(&row.Filename, d.Filename)
	pick(&row.SenderName, d.SenderName)
	pick(&row.SenderPhone, d.SenderPhone)
	pick(&row.SenderID, d.SenderID)
	pick(&row.SenderType, d.SenderType)
	pick(&row.RecipientPhone, d.RecipientPhone)
	pick(&row.ReplyTo, d.ReplyTo)
	row.IsTemplate = row.IsTemplate || d.IsTemplate
	pickTime(&row.DeliveredAt, d.DeliveredAt)
	pickTime(&row.ReadAt, d.ReadAt)
	pickTime(&row.UpdatedAt, d.UpdatedAt)
	row.Enriched = true
	row.EnrichError = ""
	row.StatusSource = "" // the API's answer: confirmed
	row.DetailRaw = string(d.Raw)
}

func truncateError(s string) string {
	const max = 2000
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

// recheckedRow applies a fresh detail answer to an archived row and says
// whether anything an analyst would see changed.
func recheckedRow(old sink.MessageRow, d cekat.Message, now time.Time) (sink.MessageRow, bool) {
	row := old
	applyDetail(&row, d)
	changed := !old.Enriched || old.StatusSource != "" || row.Status != old.Status || !sameTime(row.DeliveredAt, old.DeliveredAt) ||
		!sameTime(row.ReadAt, old.ReadAt) || !sameTime(row.UpdatedAt, old.UpdatedAt)
	if !changed {
		return old, false
	}
	row.FetchedAt, row.Version = now, max(old.Version+1, uint64(now.UnixNano()))
	return row, true
}

// provisionalRow lays what a webhook event told over an archived row: the
// status and its time, marked as the event's (sink.MessageRow.StatusSource)
// until a detail call confirms them. Statuses only move forward: a read
// message is not made delivered again; nothing new gives no row.
func provisionalRow(old sink.MessageRow, t StatusTold, now time.Time) (sink.MessageRow, bool) {
	row := old
	at := t.At
	switch t.Event {
	case "message.delivered":
		if old.DeliveredAt != nil || finalStatus(old.Status) {
			return old, false
		}
		row.DeliveredAt = &at
		if !strings.EqualFold(old.Status, "read") {
			row.Status = "delivered"
		}
	case "message.read":
		if old.ReadAt != nil {
			return old, false
		}
		row.ReadAt, row.Status = &at, "read"
	default:
		return old, false
	}
	row.StatusSource = "webhook:" + t.Event
	row.FetchedAt, row.Version = now, max(old.Version+1, uint64(now.UnixNano()))
	return row, true
}

// sameTime compares at the archive's precision (whole seconds).
func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Unix() == b.Unix()
}
