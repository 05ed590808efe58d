package subjects

// BucketLifecycle holds the connection-lifecycle role's state: the last
// lifecycle state derived from each user record (so a redelivered change
// derives the same transitions), OAuth connect states (single use, with a
// TTL), token refresh locks and the refresh due-time index.
const BucketLifecycle = "sb_lifecycle"
