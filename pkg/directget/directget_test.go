package directget_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/directget"
)

func TestGet(t *testing.T) {
	s := brokertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "DG", Subjects: []string{"dg.>"}, AllowDirect: true}); err != nil {
		t.Fatal(err)
	}
	const n = 1500 // more than one multi_last may answer
	for i := range n {
		if _, err := s.JS.Publish(ctx, fmt.Sprintf("dg.k.%04d", i), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	// A key written twice: multi_last answers its last value.
	if _, err := s.JS.Publish(ctx, "dg.k.0007", []byte("seven")); err != nil {
		t.Fatal(err)
	}
	collect := func(req directget.Request) ([]directget.Msg, uint64, error) {
		var out []directget.Msg
		pending, err := directget.Get(ctx, s.NC, "DG", req, func(m directget.Msg) error {
			out = append(out, m)
			return nil
		})
		return out, pending, err
	}
	for _, tc := range []struct {
		name        string
		req         directget.Request
		wantN       int
		wantPending uint64
		wantErr     error
	}{
		{"multi_last of named keys", directget.Request{MultiLast: []string{"dg.k.0001", "dg.k.0007", "dg.k.none"}, Batch: 3}, 2, 0, nil},
		{"multi_last batch smaller than matches", directget.Request{MultiLast: []string{"dg.k.00*"}, Batch: 10}, 10, 90, nil},
		{"multi_last over the server's cap", directget.Request{MultiLast: []string{"dg.k.*"}}, 0, 0, directget.ErrTooMany},
		{"nothing matched", directget.Request{MultiLast: []string{"dg.none.*"}, Batch: 5}, 0, 0, nil},
		{"next_by_subj scan, a whole batch", directget.Request{Seq: 1, NextFor: "dg.k.*", Batch: 1200}, 1200, n + 1 - 1200, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, pending, err := collect(tc.req)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if len(got) != tc.wantN || pending != tc.wantPending {
				t.Fatalf("got %d messages, pending %d; want %d, pending %d", len(got), pending, tc.wantN, tc.wantPending)
			}
			for _, m := range got {
				if m.Subject == "dg.k.0007" && string(m.Data) != "seven" && len(tc.req.MultiLast) > 0 {
					t.Errorf("dg.k.0007 = %q, want its last value", m.Data)
				}
				if m.Seq == 0 {
					t.Errorf("%s: no sequence", m.Subject)
				}
			}
		})
	}
	t.Run("fn's error ends the read", func(t *testing.T) {
		stop := errors.New("stop")
		_, err := directget.Get(ctx, s.NC, "DG", directget.Request{MultiLast: []string{"dg.k.00*"}, Batch: 50}, func(directget.Msg) error { return stop })
		if !errors.Is(err, stop) {
			t.Fatalf("err = %v, want fn's", err)
		}
	})
	t.Run("an unknown stream times out with the context", func(t *testing.T) {
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err := directget.Get(short, s.NC, "NOPE", directget.Request{MultiLast: []string{"x"}, Batch: 1}, func(directget.Msg) error { return nil })
		if err == nil {
			t.Fatal("no error for a stream that does not exist")
		}
	})
}
