package runs

import (
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"
)

// HeaderReply carries a Reply's fields, as JSON, on the reply message; the
// response body is the message's data, as is. Sending the body raw instead
// of inside the JSON (where []byte becomes base64, a third larger) lets a
// response use the whole message budget.
const HeaderReply = "Sb-Reply"

// Msg encodes r as a message to subject.
func (r *Reply) Msg(subject string) (*nats.Msg, error) {
	meta := *r
	meta.Body = nil
	b, err := json.Marshal(meta)
	if err != nil {
		return nil, fmt.Errorf("encode reply: %w", err)
	}
	m := nats.NewMsg(subject)
	m.Header.Set(HeaderReply, string(b))
	m.Data = r.Body
	return m, nil
}

// DecodeReply reads a reply message written by Reply.Msg.
func DecodeReply(m *nats.Msg) (*Reply, error) {
	var r Reply
	if err := json.Unmarshal([]byte(m.Header.Get(HeaderReply)), &r); err != nil {
		return nil, fmt.Errorf("decode reply: %w", err)
	}
	if len(m.Data) > 0 {
		r.Body = m.Data
	}
	return &r, nil
}
