/*
 * inlined.c - pool calls that the compiler inlines into their callers, so that the debug
 * information of the -O2 builds (testdata/debug/) carries an inlining chain for the call
 * instruction: ExAllocatePoolWithTag is written in AllocNode (:23), AllocNode is inlined
 * into AllocPair (:28) and into BuildList (:34), AllocPair into BuildList (:33). The
 * ExAllocatePool in LegacyAlloc (:39) stays in its own function (no chain). Markers: see
 * pooltest.c. Built only as a debug fixture (testdata/debug/build_debug.sh), not in bin/.
 */
#include "mini_ntddk.h"

#define TAG_NODE 'edoN' /* 0x65646F4E, shown "Node" */

void *volatile g_Nodes[8];

#if defined(__GNUC__) || defined(__clang__)
#define ALWAYS_INLINE static __inline__ __attribute__((always_inline))
#else
#define ALWAYS_INLINE static __forceinline
#endif

ALWAYS_INLINE PVOID AllocNode(ULONG Size)
{
    return ExAllocatePoolWithTag(NonPagedPoolNx, Size, TAG_NODE); /* SITE api=ExAllocatePoolWithTag type=0x200 size=param tag=0x65646F4E */
}

ALWAYS_INLINE PVOID AllocPair(void)
{
    return AllocNode(0x20);
}

NOINLINE void BuildList(void)
{
    g_Nodes[0] = AllocPair();
    g_Nodes[1] = AllocNode(0x40);
}

NOINLINE void LegacyAlloc(void)
{
    g_Nodes[2] = ExAllocatePool(NonPagedPool, 0x30); /* SITE api=ExAllocatePool type=0x0 size=0x30 tag=- */
}

VOID NTAPI InlinedUnload(PDRIVER_OBJECT DriverObject)
{
    (void)DriverObject;
    ExFreePoolWithTag(g_Nodes[0], TAG_NODE); /* SITE api=ExFreePoolWithTag type=- size=- tag=0x65646F4E */
}

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    (void)RegistryPath;
    DriverObject->DriverUnload = InlinedUnload;
    BuildList();
    LegacyAlloc();
    return STATUS_SUCCESS;
}
