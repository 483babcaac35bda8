/*
 * clean.c - a well-behaved driver: one ExAllocatePool2 with POOL_FLAG_NON_PAGED
 * (non-executable) and a printable, non-default tag, freed with the same tag.
 * It should produce no pool findings. Markers: see pooltest.c.
 */
#include "mini_ntddk.h"

#define CLEAN_TAG 'nlCc' /* 0x6E6C4363, shown "cCln" */

void *volatile g_Buffer;

#ifdef WITH_CFG
/*
 * Built as cfguard_clang_x64_O2 with -cfguard and /guard:cf: the same driver with Control Flow
 * Guard. lld-link fills the guard tables only when the image has a load configuration directory
 * (_load_config_used); a driver normally gets it from the WDK libraries, so it is written here.
 * The layout is IMAGE_LOAD_CONFIG_DIRECTORY64 up to GuardFlags (Size 0x94, x64 only); GuardFlags
 * is declared 64-bit because clang cannot truncate a symbol address in a constant initializer.
 */
typedef struct _FIXTURE_LOAD_CONFIG64 {
    ULONG Size;
    ULONG TimeDateStamp;
    USHORT MajorVersion;
    USHORT MinorVersion;
    ULONG GlobalFlagsClear;
    ULONG GlobalFlagsSet;
    ULONG CriticalSectionDefaultTimeout;
    ULONG64 DeCommitFreeBlockThreshold;
    ULONG64 DeCommitTotalFreeThreshold;
    ULONG64 LockPrefixTable;
    ULONG64 MaximumAllocationSize;
    ULONG64 VirtualMemoryThreshold;
    ULONG64 ProcessAffinityMask;
    ULONG ProcessHeapFlags;
    USHORT CSDVersion;
    USHORT DependentLoadFlags;
    ULONG64 EditList;
    ULONG64 SecurityCookie;
    ULONG64 SEHandlerTable;
    ULONG64 SEHandlerCount;
    ULONG64 GuardCFCheckFunctionPointer;
    ULONG64 GuardCFDispatchFunctionPointer;
    ULONG64 GuardCFFunctionTable;
    ULONG64 GuardCFFunctionCount;
    ULONG64 GuardFlags; /* ULONG GuardFlags, plus the first (zero) half of CodeIntegrity */
} FIXTURE_LOAD_CONFIG64;

extern char __guard_fids_table[];
extern char __guard_fids_count[];
extern char __guard_flags[];

static void __cdecl CfgCheckNothing(void *Target)
{
    (void)Target;
}

void *__guard_check_icall_fptr = (void *)CfgCheckNothing;
ULONG64 __security_cookie = 0x00002B992DDFA232ULL;

const FIXTURE_LOAD_CONFIG64 _load_config_used = {
    .Size = 0x94,
    .SecurityCookie = (ULONG64)&__security_cookie,
    .GuardCFCheckFunctionPointer = (ULONG64)&__guard_check_icall_fptr,
    .GuardCFFunctionTable = (ULONG64)__guard_fids_table,
    .GuardCFFunctionCount = (ULONG64)__guard_fids_count,
    .GuardFlags = (ULONG64)__guard_flags,
};
#endif

VOID NTAPI CleanUnload(PDRIVER_OBJECT DriverObject)
{
    (void)DriverObject;
    if (g_Buffer != NULL)
        ExFreePoolWithTag(g_Buffer, CLEAN_TAG); /* SITE api=ExFreePoolWithTag type=- size=- tag=0x6E6C4363 */
}

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    (void)RegistryPath;
    g_Buffer = ExAllocatePool2(POOL_FLAG_NON_PAGED, 0x100, CLEAN_TAG); /* SITE api=ExAllocatePool2 type=0x40 size=0x100 tag=0x6E6C4363 */
    if (g_Buffer == NULL)
        return STATUS_INSUFFICIENT_RESOURCES;
    DriverObject->DriverUnload = CleanUnload;
    return STATUS_SUCCESS;
}
