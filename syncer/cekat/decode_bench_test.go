package cekat

import (
	"testing"
	"time"
)

// BenchmarkDecodeDetail is the client's work on one detail answer once the
// body is read: the envelope and the message, either shape.
//
//	go test -run '^$' -bench DecodeDetail -benchmem ./syncer/cekat/
func BenchmarkDecodeDetail(b *testing.B) {
	jakarta, _ := time.LoadLocation("Asia/Jakarta")
	for _, c := range []struct{ name, msg string }{{"documented", documentedDetail}, {"flat", flatReal}} {
		body := []byte(`{"success":true,"data":` + c.msg + `}`)
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := decodeDetailBody(body, jakarta); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func decodeDetailBody(body []byte, loc *time.Location) (Message, error) {
	data, err := successData(body)
	if err != nil {
		return Message{}, err
	}
	return decodeValidMessage(data, loc)
}
