/*
 * rebuild.c - one driver built twice (testdata/rebuild/a and b): b adds an exported function
 * with no pool call before all the others, so every function after it moves. Baselines must
 * see b's pool findings as the same findings as a's (fingerprints never hold an address).
 */
#include "mini_ntddk.h"

void *volatile g_Keep[8];

#ifdef UNRELATED_FUNCTION
/* The unrelated change: exported so the linker keeps it, first in the file so it moves the
   code of every function below. */
__declspec(dllexport) NOINLINE ULONG UnrelatedChecksum(const UCHAR *Data, ULONG Length)
{
    ULONG sum = 0;
    for (ULONG i = 0; i < Length; i++) {
        sum = (sum << 5) + sum + Data[i];
    }
    return sum;
}
#endif

__declspec(dllexport) NOINLINE void AllocateBuffers(void)
{
    g_Keep[0] = ExAllocatePoolWithTag(NonPagedPoolNx, 0x100, 'fubR');
    g_Keep[1] = ExAllocatePoolWithTag(NonPagedPoolNx, 0x200, 'fubR');
    g_Keep[2] = ExAllocatePool(NonPagedPool, 0x40);
}

__declspec(dllexport) NOINLINE void FreeBuffers(void)
{
    ExFreePoolWithTag(g_Keep[0], 'fubR');
    ExFreePoolWithTag(g_Keep[1], 'fubR');
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    (void)DriverObject;
    (void)RegistryPath;
    AllocateBuffers();
    g_Keep[3] = ExAllocatePoolWithTag(PagedPool, 0x30, 'yrtE');
    FreeBuffers();
    return 0;
}
