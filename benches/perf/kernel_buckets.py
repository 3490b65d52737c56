#!/usr/bin/env python3
"""Where a server's CPU time goes, from `perf record -e cpu-clock -g -p PIDS`.

Each sample goes to the bucket of the innermost function on its stack that
one of the lists below names (so a copy inside tcp_recvmsg counts as the
receive copy-out, and the client socket's receive processing that loopback
runs inside our tcp_sendmsg counts as that, not as transmit). A sample whose
leaf is a user address is user space. With --us RPS SECONDS it also prints
microseconds per request: samples / FREQ / (RPS x SECONDS).

Caveat (no PMU, e.g. a Firecracker VM): cpu-clock samples are taken from a
timer interrupt, so code running with interrupts off is charged to where
they come back on: finish_task_switch, _raw_spin_unlock_irqrestore. The
scheduler bucket holds the interrupts-off part of switching and waking.

Usage: kernel_buckets.py PERF_DATA [--us RPS SECONDS [--freq HZ]]
(BENCHMARKS.md, "Kernel time per keep-alive request (issue 22)").
"""
import sys, subprocess, collections
# innermost match wins; order within the list does not matter
CATS = [
 ("schedule: switching away/back (__schedule, finish_task_switch)", ["__schedule", "finish_task_switch", "schedule_idle"]),
 ("TCP receive path run here for the peer's socket (tcp_v4_rcv, via loopback softirq)", ["tcp_v4_rcv", "ip_rcv", "__netif_receive_skb", "net_rx_action", "process_backlog", "tcp_rcv_established", "tcp_v4_do_rcv"]),
 ("TCP transmit (tcp_sendmsg .. loopback_xmit, skb alloc, copy in)", ["tcp_sendmsg", "tcp_sendmsg_locked", "tcp_write_xmit", "__tcp_transmit_skb", "ip_queue_xmit", "__dev_queue_xmit", "loopback_xmit", "tcp_push", "__tcp_push_pending_frames"]),
 ("TCP receive copy-out (tcp_recvmsg)", ["tcp_recvmsg", "tcp_recvmsg_locked", "tcp_cleanup_rbuf", "skb_copy_datagram_iter", "__sk_destruct", "tcp_rcv_space_adjust"]),
 ("epoll (ep_poll, ep_send_events, ep_poll_callback)", ["ep_poll", "ep_send_events", "ep_poll_callback", "do_epoll_wait", "ep_item_poll"]),
 ("io_uring: task work / poll wakeup / CQE posting", ["io_poll_wake", "__io_poll_execute", "io_req_task_work_add", "tctx_task_work", "io_run_local_work", "__io_run_local_work", "io_poll_task_func", "io_handle_tw_list", "io_req_local_work_add", "__io_req_task_work_add", "io_cqe_cache_refill", "io_fill_cqe_req", "__io_submit_flush_completions", "io_req_complete_post"]),
 ("io_uring: submission (io_submit_sqes, io_issue_sqe, io_recv/io_send setup, buffer select)", ["io_submit_sqes", "io_issue_sqe", "io_recv", "io_send", "io_sendmsg", "io_recvmsg", "io_buffer_select", "io_arm_poll_handler", "io_init_req", "io_queue_sqe"]),
 ("io_uring: io_uring_enter/wait other", ["__do_sys_io_uring_enter", "__x64_sys_io_uring_enter", "io_cqring_wait", "io_uring_enter"]),
 ("socket syscalls other (sendto/recvfrom/read/write/writev glue)", ["__sys_sendto", "__sys_recvfrom", "ksys_read", "ksys_write", "do_writev", "vfs_read", "vfs_write", "sock_write_iter", "sock_read_iter", "__x64_sys_sendto", "__x64_sys_recvfrom"]),
 ("syscall entry/exit, irq, timers (entry_SYSCALL_64, exit_to_user_mode)", ["entry_SYSCALL_64", "do_syscall_64", "syscall_exit_to_user_mode", "exit_to_user_mode_prepare", "asm_sysvec_apic_timer_interrupt", "irq_exit_rcu", "__irq_exit_rcu", "hrtimer_interrupt", "asm_common_interrupt", "__do_softirq", "handle_softirqs"]),
]
FN2CAT = {}
for cat, fns in CATS:
    for f in fns: FN2CAT[f] = cat

def main(path):
    """Sample counts per bucket, and the total."""
    out = subprocess.run(["perf", "script", "-i", path, "-F", "ip,sym"], capture_output=True, text=True).stdout
    counts = collections.Counter()
    total = 0
    for block in out.strip().split("\n\n"):
        frames = [l.split()[1] if len(l.split()) > 1 else "?" for l in block.strip().splitlines()]
        if not frames: continue
        total += 1
        # user space: leaf is not a kernel address
        leaf_ip = block.strip().splitlines()[0].split()[0]
        if not leaf_ip.startswith("ffff"):
            counts["user space"] += 1; continue
        cat = None
        for f in frames:
            f = f.split("+")[0]
            base = f.split(".")[0]
            if f in FN2CAT: cat = FN2CAT[f]; break
            if base in FN2CAT: cat = FN2CAT[base]; break
        counts[cat or "kernel other"] += 1
    return counts, total

if __name__ == "__main__":
    args = sys.argv[1:]
    path = args[0]
    per_request = None
    if "--us" in args:
        i = args.index("--us")
        rps, seconds = float(args[i + 1]), float(args[i + 2])
        freq = float(args[args.index("--freq") + 1]) if "--freq" in args else 2999.0
        per_request = lambda n: n / freq / (rps * seconds) * 1e6
    counts, total = main(path)
    print(f"== {path}: {total} samples" + (f", {per_request(total):.2f} us/request" if per_request else ""))
    for cat, n in counts.most_common():
        us = f"  {per_request(n):5.2f} us" if per_request else ""
        print(f"  {100*n/total:5.1f}%{us}  {cat}")
