/*
 * ntoskrnl_stub.c - a fake kernel image for the test crash-dump writer. Built as
 * a DLL whose export directory names "ntoskrnl.exe" and exports every
 * ntoskrnl.exe routine the fixtures import (ntoskrnl_stub.def). Each export has
 * its own small body (no two are identical), so every export has a distinct
 * address and an IAT slot filled with it names exactly one routine.
 */
#define FIXTURE_NO_DLLIMPORT
#include "mini_ntddk.h"

volatile ULONG g_LastCall;
volatile ULONG_PTR g_LastArg;

NOINLINE static PVOID Record(ULONG Which, ULONG_PTR Arg)
{
    g_LastCall = Which;
    g_LastArg = Arg;
    return NULL;
}

PVOID NTAPI ExAllocatePool(POOL_TYPE PoolType, SIZE_T NumberOfBytes)
{
    return Record(1, NumberOfBytes + PoolType);
}

PVOID NTAPI ExAllocatePoolWithQuota(POOL_TYPE PoolType, SIZE_T NumberOfBytes)
{
    return Record(2, NumberOfBytes + PoolType);
}

PVOID NTAPI ExAllocatePoolWithTag(POOL_TYPE PoolType, SIZE_T NumberOfBytes, ULONG Tag)
{
    return Record(3, NumberOfBytes + PoolType + Tag);
}

PVOID NTAPI ExAllocatePoolWithQuotaTag(POOL_TYPE PoolType, SIZE_T NumberOfBytes, ULONG Tag)
{
    return Record(4, NumberOfBytes + PoolType + Tag);
}

PVOID NTAPI ExAllocatePoolWithTagPriority(POOL_TYPE PoolType, SIZE_T NumberOfBytes, ULONG Tag,
                                          EX_POOL_PRIORITY Priority)
{
    return Record(5, NumberOfBytes + PoolType + Tag + Priority);
}

PVOID NTAPI ExAllocatePool2(POOL_FLAGS Flags, SIZE_T NumberOfBytes, ULONG Tag)
{
    return Record(6, NumberOfBytes + (ULONG_PTR)Flags + Tag);
}

PVOID NTAPI ExAllocatePool3(POOL_FLAGS Flags, SIZE_T NumberOfBytes, ULONG Tag,
                            PCPOOL_EXTENDED_PARAMETER ExtendedParameters, ULONG Count)
{
    (void)ExtendedParameters;
    return Record(7, NumberOfBytes + (ULONG_PTR)Flags + Tag + Count);
}

VOID NTAPI ExFreePool(PVOID P)
{
    Record(8, (ULONG_PTR)P);
}

VOID NTAPI ExFreePoolWithTag(PVOID P, ULONG Tag)
{
    Record(9, (ULONG_PTR)P + Tag);
}

VOID NTAPI ExFreePool2(PVOID P, ULONG Tag, PCPOOL_EXTENDED_PARAMETER ExtendedParameters, ULONG Count)
{
    (void)ExtendedParameters;
    Record(10, (ULONG_PTR)P + Tag + Count);
}

VOID NTAPI ExInitializeNPagedLookasideList(NPAGED_LOOKASIDE_LIST *Lookaside, ALLOCATE_FUNCTION *Allocate,
                                           FREE_FUNCTION *Free, ULONG Flags, SIZE_T Size, ULONG Tag,
                                           USHORT Depth)
{
    (void)Allocate;
    (void)Free;
    Lookaside->Opaque[0] = Size;
    Record(11, Flags + Tag + Depth);
}

VOID NTAPI ExInitializePagedLookasideList(PAGED_LOOKASIDE_LIST *Lookaside, ALLOCATE_FUNCTION *Allocate,
                                          FREE_FUNCTION *Free, ULONG Flags, SIZE_T Size, ULONG Tag,
                                          USHORT Depth)
{
    (void)Allocate;
    (void)Free;
    Lookaside->Opaque[1] = Size;
    Record(12, Flags + Tag + Depth);
}

NTSTATUS NTAPI ExInitializeLookasideListEx(LOOKASIDE_LIST_EX *Lookaside, ALLOCATE_FUNCTION_EX *Allocate,
                                           FREE_FUNCTION_EX *Free, POOL_TYPE PoolType, ULONG Flags,
                                           SIZE_T Size, ULONG Tag, USHORT Depth)
{
    (void)Allocate;
    (void)Free;
    Lookaside->Opaque[2] = Size;
    Record(13, PoolType + Flags + Tag + Depth);
    return STATUS_SUCCESS;
}

PVOID NTAPI MmAllocateContiguousMemory(SIZE_T NumberOfBytes, PHYSICAL_ADDRESS HighestAcceptableAddress)
{
    return Record(14, NumberOfBytes + (ULONG_PTR)HighestAcceptableAddress.QuadPart);
}

PVOID NTAPI MmAllocateContiguousMemorySpecifyCache(SIZE_T NumberOfBytes, PHYSICAL_ADDRESS Lowest,
                                                   PHYSICAL_ADDRESS Highest, PHYSICAL_ADDRESS BoundaryMultiple,
                                                   MEMORY_CACHING_TYPE CacheType)
{
    return Record(15, NumberOfBytes + (ULONG_PTR)(Lowest.QuadPart + Highest.QuadPart +
                                                  BoundaryMultiple.QuadPart) + CacheType);
}

PVOID NTAPI MmAllocateContiguousMemorySpecifyCacheNode(SIZE_T NumberOfBytes, PHYSICAL_ADDRESS Lowest,
                                                       PHYSICAL_ADDRESS Highest,
                                                       PHYSICAL_ADDRESS BoundaryMultiple,
                                                       MEMORY_CACHING_TYPE CacheType,
                                                       NODE_REQUIREMENT PreferredNode)
{
    return Record(16, NumberOfBytes + (ULONG_PTR)(Lowest.QuadPart + Highest.QuadPart +
                                                  BoundaryMultiple.QuadPart) + CacheType + PreferredNode);
}

VOID NTAPI KeInitializeEvent(PRKEVENT Event, EVENT_TYPE Type, BOOLEAN State)
{
    Event->Header[0] = Type;
    Event->Header[1] = State;
    Event->WaitListHead.Flink = &Event->WaitListHead;
    Event->WaitListHead.Blink = &Event->WaitListHead;
    Record(17, (ULONG_PTR)Event);
}

int __cdecl _wcsnicmp(const WCHAR *String1, const WCHAR *String2, SIZE_T Count)
{
    SIZE_T i;

    for (i = 0; i < Count; i++) {
        WCHAR a = String1[i], b = String2[i];
        if (a >= 'A' && a <= 'Z')
            a += 'a' - 'A';
        if (b >= 'A' && b <= 'Z')
            b += 'a' - 'A';
        if (a != b)
            return a < b ? -1 : 1;
        if (a == 0)
            break;
    }
    return 0;
}
