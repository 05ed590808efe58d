package history

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/subjects"
)

// markUnclean leaves the closed file as a crash would: not marked clean.
func markUnclean(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyClean, []byte{0}) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func waitRebuilt(t *testing.T, s *Store) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, ok := s.Rebuilding(); !ok {
			return
		}
		if time.Now().After(deadline) {
			rb, _ := s.Rebuilding()
			t.Fatalf("still rebuilding: %+v", rb)
		}
		time.Sleep(5 * time.Millisecond) // polling, bounded by deadline
	}
}

func TestRebuildState(t *testing.T) {
	js := brokertest.Start(t).JS
	path := filepath.Join(t.TempDir(), "h.db")

	// A new file on an empty stream has nothing to rebuild.
	s := openStore(t, path, js, nil)
	if rb, ok := s.Rebuilding(); ok {
		t.Fatalf("a new file on an empty stream: rebuilding %+v", rb)
	}
	stop := follow(t, s)
	last := seedMixed(t, js, 40)
	waitSeq(t, s, last)
	if _, ok := s.Rebuilding(); ok {
		t.Fatal("a file that follows the stream from the start reports a rebuild")
	}
	stop()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// A clean file resumes: no rebuild.
	s2, err := Open(context.Background(), Options{Path: path, JS: js})
	if err != nil {
		t.Fatal(err)
	}
	if rb, ok := s2.Rebuilding(); ok {
		t.Fatalf("a clean file: rebuilding %+v", rb)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}

	// An unclean one is rebuilt: reported from Open until the follower
	// has applied what the stream held.
	markUnclean(t, path)
	s3 := openStore(t, path, js, nil)
	rb, ok := s3.Rebuilding()
	if !ok || rb.Reason != RebuildUnclean || rb.Target != last || rb.Applied != 0 {
		t.Fatalf("an unclean file: %+v %v, want rebuilding to %d", rb, ok, last)
	}
	follow(t, s3)
	waitRebuilt(t, s3)
	if s3.LastSeq() != last {
		t.Fatalf("rebuilt to %d, want %d", s3.LastSeq(), last)
	}
}

// TestRebuildEndsWithoutTheLastMessage: the stream's last sequence may be a
// message that was deleted; the rebuild still ends, when nothing more is
// pending.
func TestRebuildEndsWithoutTheLastMessage(t *testing.T) {
	js := brokertest.Start(t).JS
	path := filepath.Join(t.TempDir(), "h.db")
	last := seedMixed(t, js, 10)
	st, err := js.Stream(context.Background(), subjects.StreamRunEvents)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteMsg(context.Background(), last); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, path, js, nil)
	rb, ok := s.Rebuilding()
	if !ok || rb.Reason != RebuildNewFile {
		t.Fatalf("a new file on a stream with history: %+v %v", rb, ok)
	}
	follow(t, s)
	waitRebuilt(t, s)
}
