/*
 * untagged.c - a small driver in the shape of the incident: an untagged,
 * executable ExAllocatePool(NonPagedPool, n) in a loop, frees with tag 0,
 * _wcsnicmp and KeInitializeEvent imports, and DriverEntry in a discardable
 * INIT section. Imports are declared without dllimport, so every call goes
 * through an import thunk (call rel32 -> jmp [IAT]). Markers: see pooltest.c.
 */
#define FIXTURE_NO_DLLIMPORT
#include "mini_ntddk.h"

#define ENTRY_SIZE 0x90

typedef struct _CACHE_ENTRY {
    struct _CACHE_ENTRY *Next;
    WCHAR Name[32];
} CACHE_ENTRY;

CACHE_ENTRY *volatile g_Head;
KEVENT g_CacheEvent;
volatile ULONG g_Refills;

static const WCHAR g_Prefix[] = L"\\REGISTRY\\MACHINE";

NOINLINE void RefillCache(ULONG Count)
{
    ULONG i;

    for (i = 0; i < Count; i++) {
        CACHE_ENTRY *e = ExAllocatePool(NonPagedPool, ENTRY_SIZE); /* SITE api=ExAllocatePool type=0x0 size=0x90 tag=- */
        if (e == NULL)
            break;
        e->Name[0] = 0;
        e->Next = g_Head;
        g_Head = e;
    }
    g_Refills++;
}

NOINLINE void DrainCache(void)
{
    CACHE_ENTRY *e;

    while ((e = g_Head) != NULL) {
        g_Head = e->Next;
        ExFreePoolWithTag(e, 0); /* SITE api=ExFreePoolWithTag type=- size=- tag=0x0 */
    }
}

VOID NTAPI UntaggedUnload(PDRIVER_OBJECT DriverObject)
{
    (void)DriverObject;
    DrainCache();
}

__attribute__((section("INIT")))
NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    KeInitializeEvent(&g_CacheEvent, NotificationEvent, 0);
    DriverObject->DriverUnload = UntaggedUnload;
    if (RegistryPath->Buffer != NULL &&
        _wcsnicmp(RegistryPath->Buffer, g_Prefix, sizeof(g_Prefix) / sizeof(g_Prefix[0]) - 1) == 0)
        RefillCache(RegistryPath->Length);
    else
        RefillCache(8);
    return STATUS_SUCCESS;
}
