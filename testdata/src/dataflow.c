/*
 * dataflow.c - values a call-site analysis must follow through the ABI and through a
 * wrapper (issue 17). Markers as in pooltest.c, and for a value that is one of several
 * constants:
 *
 *   tag=one:<hex>|<hex>|...   (the set, in ascending order)
 *
 * 1. KeepAcrossCalls: a tag chosen once and the allocator called in a loop with a call of
 *    another function between the allocations; -O2 builds keep the tag (and, where the
 *    compiler hoists it, the IAT pointer) in a callee-saved register across those calls
 *    (x86 ebx/esi/edi, x64 rbx/rsi/rdi/r12-r15, ARM64 x19-x28).
 * 2. AllocByKind: a wrapper that picks the tag by a switch on its parameter (compiled to a
 *    bounds check and a lookup table in .rdata/.data); each caller with a constant kind gets
 *    that case's tag, and the wrapper's own site has the set of every case's tag (a caller
 *    whose kind is not known adds nothing to it, so it has no row of its own).
 */
#include "mini_ntddk.h"

void *volatile g_Sink[16];
volatile ULONG g_Kind;
volatile ULONG g_Count;

/* A call the compiler cannot see through: it clobbers every volatile register. */
NOINLINE void Touch(void *p)
{
    g_Sink[15] = p;
}

NOINLINE void KeepAcrossCalls(ULONG n)
{
    ULONG tag = g_Kind ? 'AekK' : 'Bpek';
    for (ULONG i = 0; i < n; i++) {
        void *p = ExAllocatePoolWithTag(NonPagedPoolNx, 0x40, tag); /* SITE api=ExAllocatePoolWithTag type=0x200 size=0x40 tag=one:0x41656b4b|0x4270656b */
        Touch(p);
        void *q = ExAllocatePoolWithTag(PagedPool, 0x50, tag); /* SITE api=ExAllocatePoolWithTag type=0x1 size=0x50 tag=one:0x41656b4b|0x4270656b */
        Touch(q);
        ExFreePoolWithTag(p, tag); /* SITE api=ExFreePoolWithTag type=- size=- tag=one:0x41656b4b|0x4270656b */
    }
}

NOINLINE PVOID AllocByKind(ULONG Kind)
{
    ULONG tag;
    switch (Kind) {
    case 0:
        tag = '0dwS'; /* 0x30647753 */
        break;
    case 1:
        tag = '1dwS'; /* 0x31647753 */
        break;
    case 3:
        tag = 'kaeP'; /* 0x6B616550 */
        break;
    default:
        tag = 'tfeD'; /* 0x74666544 */
        break;
    }
    return ExAllocatePoolWithTag(NonPagedPoolNx, 0x60, tag); /* SITE api=ExAllocatePoolWithTag type=0x200 size=0x60 tag=one:0x30647753|0x31647753|0x6b616550|0x74666544 wrapper=AllocByKind */
}

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    (void)DriverObject;
    (void)RegistryPath;
    KeepAcrossCalls(g_Count);
    g_Sink[0] = AllocByKind(0); /* WRAPCALL wrapper=AllocByKind tag=0x30647753 */
    g_Sink[1] = AllocByKind(1); /* WRAPCALL wrapper=AllocByKind tag=0x31647753 */
    g_Sink[2] = AllocByKind(3); /* WRAPCALL wrapper=AllocByKind tag=0x6B616550 */
    g_Sink[3] = AllocByKind(9); /* WRAPCALL wrapper=AllocByKind tag=0x74666544 */
    return STATUS_SUCCESS;
}
