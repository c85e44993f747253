package cekatsim

import (
	"encoding/json"
	"net/http"
	"reflect"
	"testing"
)

func TestDeletionLogAndFaults(t *testing.T) {
	e := newEnv(t, Options{Seed: 2, MessageCounts: []int{3, 3, 3, 3}})
	ids := e.sim.ConversationIDs()
	bo := e.backofficeHeader()
	e.sim.QueueDeleteFaults(DeleteFault{Status: 401}, DeleteFault{Status: 429}, DeleteFault{Status: 503},
		DeleteFault{Keep: 1})

	for _, want := range []int{401, 429, 503} {
		a := e.deleteConvs(bo, ids[0], ids[1])
		if a.status != want {
			t.Fatalf("delete with fault %d answered %d: %s", want, a.status, a.body)
		}
		if want == 429 && a.header.Get("Retry-After") != "1" {
			t.Errorf("429 without Retry-After 1: %v", a.header)
		}
		if e.sim.Counts().Status(EndpointDelete, want) != 1 {
			t.Errorf("fault %d not counted: %+v", want, e.sim.Counts())
		}
	}
	// Partial: only the first live id goes, and the answer says so.
	a := e.deleteConvs(bo, ids[0], ids[1])
	var got struct {
		Data struct {
			Deleted         int      `json:"deleted"`
			ConversationIDs []string `json:"conversation_ids"`
		} `json:"data"`
	}
	if err := json.Unmarshal(a.body, &got); err != nil || a.status != 200 {
		t.Fatalf("partial delete: %d %s", a.status, a.body)
	}
	if got.Data.Deleted != 1 || !reflect.DeepEqual(got.Data.ConversationIDs, ids[:1]) {
		t.Errorf("partial delete answered %+v, want only %s", got.Data, ids[0])
	}
	e.mustGet(listPath(ids[0]), http.StatusNotFound)
	e.mustGet(listPath(ids[1]), http.StatusOK)

	// No fault left: the rest goes; an id already deleted is not an error.
	if a := e.deleteConvs(bo, ids[0], ids[1]); a.status != 200 {
		t.Fatalf("delete: %d %s", a.status, a.body)
	}
	// Someone else deletes ids[2] in the dashboard: not in the log.
	if got := e.sim.DeleteConversations(ids[2], ids[2]); !reflect.DeepEqual(got, ids[2:3]) {
		t.Errorf("DeleteConversations = %v", got)
	}
	e.mustGet(listPath(ids[2]), http.StatusNotFound)

	log := e.sim.Deletions()
	if len(log) != 5 {
		t.Fatalf("%d deletions logged, want 5: %+v", len(log), log)
	}
	for i, want := range []Deletion{
		{Asked: ids[:2], Deleted: []string{}, Status: 401},
		{Asked: ids[:2], Deleted: []string{}, Status: 429},
		{Asked: ids[:2], Deleted: []string{}, Status: 503},
		{Asked: ids[:2], Deleted: ids[:1], Status: 200},
		{Asked: ids[:2], Deleted: ids[1:2], Status: 200},
	} {
		want.At = log[i].At
		if !reflect.DeepEqual(log[i], want) {
			t.Errorf("deletion %d = %+v, want %+v", i, log[i], want)
		}
	}

	// The same over /_sim/.
	var served []Deletion
	if err := json.Unmarshal(e.get("/_sim/deletions").body, &served); err != nil || len(served) != 5 {
		t.Errorf("/_sim/deletions: %v, %d entries", err, len(served))
	}
	if a := e.post("/_sim/delete-faults", `[{"status": 403}]`); a.status != 200 {
		t.Fatalf("queue a fault: %d %s", a.status, a.body)
	}
	if a := e.deleteConvs(bo, ids[3]); a.status != 403 {
		t.Errorf("queued 403 answered %d", a.status)
	}
	e.mustGet(listPath(ids[3]), http.StatusOK)
}
