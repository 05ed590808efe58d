package directory

// SubShardOf is the (shard, sub-shard) of user u's enrollment entries.
func SubShardOf(u string) (shard, sub int) {
	h := userHash(u)
	return int(h % Shards), int(h / Shards % subShards)
}

// LargeSample is how many entries of the sampled sub-shard make
// EnrollmentAll decline a zone without reading all of it.
const LargeSample = largeSample
