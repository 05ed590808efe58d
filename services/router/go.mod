module github.com/switchboard-hq/switchboard/services/router

go 1.26.0

require (
	github.com/switchboard-hq/switchboard/pkg v0.0.0
	github.com/switchboard-hq/switchboard/proto v0.0.0
)

replace (
	github.com/switchboard-hq/switchboard/pkg => ../../pkg
	github.com/switchboard-hq/switchboard/proto => ../../proto
)
