/*
 * What a probe saw of one VM across its migration: echo requests sent to
 * the VM's address at a fixed interval, and when their answers came
 * back. The longest gap between two answers is the stall a client of the
 * VM sees around the switchover; a VM that answers before the migration
 * ends and not after it was lost to the prober (its address does not
 * reach its new place, as on routed sites).
 *
 * The log keeps no more than the last VMM_ECHO_WINDOW probes: answers
 * are matched by index to their send time, and an answer to an older
 * probe counts as lost.
 */
#pragma once

#include <glib.h>

#define VMM_ECHO_WINDOW 4096

typedef enum {
    VMM_STALL_OFF,         /* not asked for */
    VMM_STALL_NO_ADDRESS,  /* the VM's address is unknown */
    VMM_STALL_FAILED,      /* could not probe */
    VMM_STALL_SILENT,      /* the VM never answered */
    VMM_STALL_UNREACHABLE, /* it answered, then not after the migration */
    VMM_STALL_OK,          /* answered before and after: a finite stall */
} VmmStallState;

/* The outcome for one VM; gint64 fields are VMM_UNKNOWN (-1) if unknown. */
typedef struct {
    VmmStallState state;
    char *address;        /* probed, or NULL */
    char *address_source; /* "option", "lease", "agent", "arp" */
    char *error;          /* NO_ADDRESS, FAILED: why */
    gint64 interval_ms;
    gint64 sent;
    gint64 answered;
    gint64 lost;
    gint64 stall_ms;      /* OK: the longest gap between two answers */
    gint64 stall_at_ms;   /* OK: when it began, from the migration's start */
    gint64 silent_ms;     /* UNREACHABLE: last answer to the end of probing */
    gint64 rtt_before_us; /* least RTT of probes sent before the end */
    gint64 rtt_after_us;  /* least RTT of probes sent after it */
} VmmStall;

void vmm_stall_init(VmmStall *stall);
/* Free the strings; @stall is OFF again. */
void vmm_stall_clear(VmmStall *stall);
const char *vmm_stall_state_name(VmmStallState state);

/* Probes sent and answered, kept by a probing thread; times are from the
 * monotonic clock, in microseconds. */
typedef struct {
    gint64 sent_us[VMM_ECHO_WINDOW]; /* by index; 0: answered */
    guint64 sent;
    guint64 answered;
    guint64 answered_after; /* of probes sent at or after @end_us */
    gint64 end_us;          /* the migration ended; 0: not yet */
    gint64 last_answer_us;  /* 0: none yet */
    gint64 gap_max_us;
    gint64 gap_start_us;
    gint64 rtt_before_us; /* -1: none yet */
    gint64 rtt_after_us;
} VmmEchoLog;

void vmm_echo_log_init(VmmEchoLog *log);
/* Probe number log->sent goes out at @now_us; returns that number. */
guint64 vmm_echo_log_sent(VmmEchoLog *log, gint64 now_us);
/* The answer to probe @index came at @now_us. FALSE if no probe of the
 * window is waiting for it: unknown, too old or a duplicate. */
gboolean vmm_echo_log_answered(VmmEchoLog *log, guint64 index, gint64 now_us);
void vmm_echo_log_end(VmmEchoLog *log, gint64 end_us);
/* How many probes from number @from on are still unanswered. */
guint64 vmm_echo_log_waiting(const VmmEchoLog *log, guint64 from);

/*
 * Fill the counters, the state (SILENT, UNREACHABLE or OK) and the
 * figures of @stall from @log. @start_us: the migration's start; @stop_us:
 * when probing stopped.
 */
void vmm_echo_log_summarize(const VmmEchoLog *log, gint64 start_us,
                            gint64 stop_us, VmmStall *stall);
