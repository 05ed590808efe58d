module github.com/switchboard-hq/switchboard/examples

go 1.26.0
