/*
 * runtimetag.c - pool tags kept in writable globals (`ULONG Tag = 'xxxx';` without const).
 * The compilers place them in .data and load them at every call, so the call sees the
 * global's value at run time: g_FixedTag is never written, so its initial value is the tag;
 * g_SetTag is overwritten by DriverEntry before any allocation. Markers: see pooltest.c.
 */
#include "mini_ntddk.h"

ULONG g_FixedTag = 'dxiF'; /* 0x64786946 in .data, shown "Fixd"; nothing writes it */
ULONG g_SetTag = 'tinI';   /* 0x74696E49 in .data, shown "Init"; DriverEntry stores 'nuRS' */

void *volatile g_Sink[4];

NOINLINE void AllocateAll(void)
{
    g_Sink[0] = ExAllocatePoolWithTag(NonPagedPoolNx, 0x20, g_FixedTag); /* SITE api=ExAllocatePoolWithTag type=0x200 size=0x20 tag=runtime:0x64786946 */
    g_Sink[1] = ExAllocatePoolWithTag(NonPagedPoolNx, 0x30, g_SetTag); /* SITE api=ExAllocatePoolWithTag type=0x200 size=0x30 tag=runtime:0x74696e49 */
}

NOINLINE void FreeAll(void)
{
    ExFreePoolWithTag(g_Sink[0], g_FixedTag); /* SITE api=ExFreePoolWithTag type=- size=- tag=runtime:0x64786946 */
    ExFreePoolWithTag(g_Sink[1], g_SetTag); /* SITE api=ExFreePoolWithTag type=- size=- tag=runtime:0x74696e49 */
    g_Sink[0] = g_Sink[1] = 0; /* not a tail call */
}

void NTAPI RuntimeTagUnload(PDRIVER_OBJECT DriverObject)
{
    (void)DriverObject;
    FreeAll();
}

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    (void)RegistryPath;
    g_SetTag = 'nuRS'; /* 0x6E755253, shown "SRun" */
    DriverObject->DriverUnload = RuntimeTagUnload;
    AllocateAll();
    return STATUS_SUCCESS;
}
