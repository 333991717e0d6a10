#include "vmm-report.h"
#include "vmm-stall.h"

void
vmm_stall_init(VmmStall *stall)
{
    *stall = (VmmStall){
        .state = VMM_STALL_OFF,
        .interval_ms = VMM_UNKNOWN,
        .sent = VMM_UNKNOWN,
        .answered = VMM_UNKNOWN,
        .lost = VMM_UNKNOWN,
        .stall_ms = VMM_UNKNOWN,
        .stall_at_ms = VMM_UNKNOWN,
        .silent_ms = VMM_UNKNOWN,
        .rtt_before_us = VMM_UNKNOWN,
        .rtt_after_us = VMM_UNKNOWN,
    };
}

void
vmm_stall_clear(VmmStall *stall)
{
    if (!stall) {
        return;
    }
    g_free(stall->address);
    g_free(stall->address_source);
    g_free(stall->error);
    vmm_stall_init(stall);
}

const char *
vmm_stall_state_name(VmmStallState state)
{
    switch (state) {
    case VMM_STALL_OFF:
        return "off";
    case VMM_STALL_NO_ADDRESS:
        return "no-address";
    case VMM_STALL_FAILED:
        return "failed";
    case VMM_STALL_SILENT:
        return "silent";
    case VMM_STALL_UNREACHABLE:
        return "unreachable";
    case VMM_STALL_OK:
        return "ok";
    }
    g_return_val_if_reached("unknown");
}

void
vmm_echo_log_init(VmmEchoLog *log)
{
    *log = (VmmEchoLog){
        .rtt_before_us = VMM_UNKNOWN,
        .rtt_after_us = VMM_UNKNOWN,
    };
}

guint64
vmm_echo_log_sent(VmmEchoLog *log, gint64 now_us)
{
    /* 0 marks an answered slot: a send time is never 0. */
    log->sent_us[log->sent % VMM_ECHO_WINDOW] = MAX(now_us, 1);
    return log->sent++;
}

static void
rtt_min(gint64 *min, gint64 rtt)
{
    if (*min < 0 || rtt < *min) {
        *min = rtt;
    }
}

gboolean
vmm_echo_log_answered(VmmEchoLog *log, guint64 index, gint64 now_us)
{
    gint64 *slot = &log->sent_us[index % VMM_ECHO_WINDOW];
    gint64 sent_us = *slot;

    if (index >= log->sent || log->sent - index > VMM_ECHO_WINDOW || !sent_us) {
        return FALSE;
    }
    *slot = 0;
    log->answered++;
    if (log->end_us && sent_us >= log->end_us) {
        log->answered_after++;
        rtt_min(&log->rtt_after_us, MAX(now_us - sent_us, 0));
    } else {
        rtt_min(&log->rtt_before_us, MAX(now_us - sent_us, 0));
    }
    /* Answers are read one after the other: their times only grow. */
    if (log->last_answer_us && now_us - log->last_answer_us > log->gap_max_us) {
        log->gap_max_us = now_us - log->last_answer_us;
        log->gap_start_us = log->last_answer_us;
    }
    log->last_answer_us = MAX(now_us, log->last_answer_us);
    return TRUE;
}

void
vmm_echo_log_end(VmmEchoLog *log, gint64 end_us)
{
    log->end_us = MAX(end_us, 1);
}

guint64
vmm_echo_log_waiting(const VmmEchoLog *log, guint64 from)
{
    guint64 n = 0;

    if (log->sent - MIN(from, log->sent) > VMM_ECHO_WINDOW) {
        from = log->sent - VMM_ECHO_WINDOW;
    }
    for (guint64 i = from; i < log->sent; i++) {
        n += log->sent_us[i % VMM_ECHO_WINDOW] != 0;
    }
    return n;
}

void
vmm_echo_log_summarize(const VmmEchoLog *log, gint64 start_us, gint64 stop_us,
                       VmmStall *stall)
{
    stall->sent = (gint64)log->sent;
    stall->answered = (gint64)log->answered;
    stall->lost = (gint64)(log->sent - log->answered);
    stall->rtt_before_us = log->rtt_before_us;
    stall->rtt_after_us = log->rtt_after_us;
    stall->stall_ms = VMM_UNKNOWN;
    stall->stall_at_ms = VMM_UNKNOWN;
    stall->silent_ms = VMM_UNKNOWN;
    if (!log->answered) {
        stall->state = VMM_STALL_SILENT;
    } else if (!log->answered_after) {
        stall->state = VMM_STALL_UNREACHABLE;
        stall->silent_ms = MAX(stop_us - log->last_answer_us, 0) / 1000;
    } else {
        stall->state = VMM_STALL_OK;
        /* One answer only: no gap between two, none seen. */
        stall->stall_ms = log->gap_max_us / 1000;
        if (log->gap_start_us) {
            stall->stall_at_ms = MAX(log->gap_start_us - start_us, 0) / 1000;
        }
    }
}
