module github.com/switchboard-hq/switchboard/services/switchboard

go 1.26.0

require (
	github.com/switchboard-hq/switchboard/pkg v0.0.0
	github.com/switchboard-hq/switchboard/proto v0.0.0
	github.com/switchboard-hq/switchboard/services/connection-lifecycle v0.0.0
	github.com/switchboard-hq/switchboard/services/ingress v0.0.0
	github.com/switchboard-hq/switchboard/services/router v0.0.0
)

require (
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/spf13/cobra v1.10.2 // indirect
	github.com/spf13/pflag v1.0.9 // indirect
)

replace (
	github.com/switchboard-hq/switchboard/pkg => ../../pkg
	github.com/switchboard-hq/switchboard/proto => ../../proto
	github.com/switchboard-hq/switchboard/services/connection-lifecycle => ../connection-lifecycle
	github.com/switchboard-hq/switchboard/services/ingress => ../ingress
	github.com/switchboard-hq/switchboard/services/router => ../router
)
