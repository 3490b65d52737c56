module ringwall-bench/go-peer

go 1.19
