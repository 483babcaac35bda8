/*
 * pooltest.c - calls every pool API drvaudit knows, with the tag, pool type and
 * size shapes its rules look at. Each call to a pool API is on one line and
 * carries a marker comment with the values the binary should show:
 *
 *   SITE api=<import> type=<hex|unknown|runtime:0x0|-> size=<hex|unknown|-> tag=<hex|unknown|param|->
 *   WRAPCALL wrapper=<function> tag=<hex>      (a call of a tag-forwarding wrapper)
 *
 * "-" means the API has no such argument. testdata/truth/make_truth.py joins these
 * markers with the call instructions it finds in each binary.
 *
 * Tags are C multi-character literals: 'looP' is 0x6C6F6F50 and shows as "Pool".
 */
#include "mini_ntddk.h"

#define TAG_POOL 'looP' /* 0x6C6F6F50, shown "Pool" */

/* Every result is stored here, so -O2 keeps every call. */
void *volatile g_Sink[40];
void *volatile g_Loop[4];
volatile ULONG g_Selector;

/* POOL_NX_OPTIN shape: the source says NonPagedPool, DriverEntry switches it to
   NonPagedPoolNx. The initial value in the image is 0 (executable). */
POOL_TYPE g_DefaultNpType = NonPagedPool;

/* A tag kept in a read-only global (.rdata). It is read through a volatile lvalue, so every
   build loads it from memory; a plain read is folded into an immediate even at -O0. */
const ULONG g_ReadOnlyTag = 'oRdR'; /* 0x6F526452, shown "RdRo" */
#define READ_ONLY_TAG (*(const volatile ULONG *)&g_ReadOnlyTag)

NPAGED_LOOKASIDE_LIST g_NpExecList;
NPAGED_LOOKASIDE_LIST g_NpNxList;
PAGED_LOOKASIDE_LIST g_PagedList;
LOOKASIDE_LIST_EX g_ListEx;

/* A wrapper that forwards its caller's tag. */
NOINLINE PVOID AllocWithTag(ULONG Tag)
{
    return ExAllocatePoolWithTag(NonPagedPoolNx, 0x80, Tag); /* SITE api=ExAllocatePoolWithTag type=0x200 size=0x80 tag=param wrapper=AllocWithTag */
}

NOINLINE void WrapperCallerA(void)
{
    g_Sink[0] = AllocWithTag('AprW'); /* WRAPCALL wrapper=AllocWithTag tag=0x41707257 */
}

NOINLINE void WrapperCallerB(void)
{
    g_Sink[1] = AllocWithTag('BprW'); /* WRAPCALL wrapper=AllocWithTag tag=0x42707257 */
    g_Sink[2] = AllocWithTag('CprW'); /* WRAPCALL wrapper=AllocWithTag tag=0x43707257 */
}

/* Tag and pool type chosen at run time: statically unknown. */
NOINLINE void ConditionalAlloc(ULONG Mode)
{
    POOL_TYPE type = (Mode & 2) ? NonPagedPoolNx : PagedPool;
    ULONG tag = (Mode & 2) ? 'dnoC' : 'DnoC';

    g_Sink[3] = ExAllocatePoolWithTag(type, 0x30, tag); /* SITE api=ExAllocatePoolWithTag type=unknown size=0x30 tag=unknown */
}

/* Pool type read from the writable global (initial value 0). */
NOINLINE void RuntimeTypeAlloc(void)
{
    g_Sink[4] = ExAllocatePoolWithTag(g_DefaultNpType, 0x38, 'TxnR'); /* SITE api=ExAllocatePoolWithTag type=runtime:0x0 size=0x38 tag=0x54786E52 */
}

NOINLINE void LoopAlloc(void)
{
    int i;

    for (i = 0; i < 4; i++)
        g_Loop[i] = ExAllocatePoolWithTag(PagedPool, 0x100, 'pooL'); /* SITE api=ExAllocatePoolWithTag type=0x1 size=0x100 tag=0x706F6F4C */
}

NOINLINE void TagShapes(void)
{
    g_Sink[5] = ExAllocatePoolWithTag(NonPagedPoolNx, 0x40, TAG_POOL); /* SITE api=ExAllocatePoolWithTag type=0x200 size=0x40 tag=0x6C6F6F50 */
    g_Sink[6] = ExAllocatePoolWithTag(NonPagedPoolNx, 0x10, 0); /* SITE api=ExAllocatePoolWithTag type=0x200 size=0x10 tag=0x0 */
    g_Sink[7] = ExAllocatePoolWithTag(PagedPool, 0x20, ' kdD'); /* SITE api=ExAllocatePoolWithTag type=0x1 size=0x20 tag=0x206B6444 */
    g_Sink[8] = ExAllocatePool2(POOL_FLAG_PAGED, 0x20, ' mdW'); /* SITE api=ExAllocatePool2 type=0x100 size=0x20 tag=0x206D6457 */
    g_Sink[9] = ExAllocatePoolWithTag(NonPagedPoolNx, 0x18, 0x3184); /* SITE api=ExAllocatePoolWithTag type=0x200 size=0x18 tag=0x3184 */
    g_Sink[10] = ExAllocatePoolWithTag(NonPagedPoolNx, 0x48, 'Bone'); /* SITE api=ExAllocatePoolWithTag type=0x200 size=0x48 tag=0x426F6E65 */
    g_Sink[11] = ExAllocatePoolWithTag(NonPagedPoolNx, 0x28, READ_ONLY_TAG); /* SITE api=ExAllocatePoolWithTag type=0x200 size=0x28 tag=0x6F526452 */
}

NOINLINE void PoolTypeShapes(void)
{
    g_Sink[12] = ExAllocatePoolWithTag(NonPagedPoolMustSucceed, 0x40, 'tsuM'); /* SITE api=ExAllocatePoolWithTag type=0x2 size=0x40 tag=0x7473754D */
    g_Sink[13] = ExAllocatePoolWithTag(NonPagedPool, 0x40, 'cexE'); /* SITE api=ExAllocatePoolWithTag type=0x0 size=0x40 tag=0x63657845 */
    g_Sink[14] = ExAllocatePool2(POOL_FLAG_NON_PAGED_EXECUTE, 0x40, 'X2xE'); /* SITE api=ExAllocatePool2 type=0x80 size=0x40 tag=0x58327845 */
    g_Sink[15] = ExAllocatePool2(POOL_FLAG_NON_PAGED, 0x40, 'N2xE'); /* SITE api=ExAllocatePool2 type=0x40 size=0x40 tag=0x4E327845 */
}

NOINLINE void LegacyAllocators(void)
{
    g_Sink[16] = ExAllocatePool(NonPagedPool, 0x60); /* SITE api=ExAllocatePool type=0x0 size=0x60 tag=- */
    g_Sink[17] = ExAllocatePoolWithQuota(PagedPool, 0x70); /* SITE api=ExAllocatePoolWithQuota type=0x1 size=0x70 tag=- */
    g_Sink[18] = ExAllocatePoolWithQuotaTag(PagedPool | POOL_QUOTA_FAIL_INSTEAD_OF_RAISE, 0x70, 'atoQ'); /* SITE api=ExAllocatePoolWithQuotaTag type=0x9 size=0x70 tag=0x61746F51 */
    g_Sink[19] = ExAllocatePoolWithTagPriority(NonPagedPoolNx, 0x90, 'irpT', NormalPoolPriority); /* SITE api=ExAllocatePoolWithTagPriority type=0x200 size=0x90 tag=0x69727054 */
}

NOINLINE void ModernAllocators(void)
{
    POOL_EXTENDED_PARAMETER param;

    param.Type = PoolExtendedParameterPriority;
    param.Optional = 0;
    param.Reserved = 0;
    param.u.Reserved2 = 0;
    param.u.Priority = NormalPoolPriority;
    g_Sink[20] = ExAllocatePool3(POOL_FLAG_NON_PAGED, 0x50, '3lP3', &param, 1); /* SITE api=ExAllocatePool3 type=0x40 size=0x50 tag=0x336C5033 */
}

NOINLINE void Lookasides(void)
{
    ExInitializeNPagedLookasideList(&g_NpExecList, NULL, NULL, 0, 0x40, 'xEaL', 0); /* SITE api=ExInitializeNPagedLookasideList type=0x0 size=0x40 tag=0x7845614C */
    ExInitializeNPagedLookasideList(&g_NpNxList, NULL, NULL, POOL_NX_ALLOCATION, 0x40, 'xNaL', 0); /* SITE api=ExInitializeNPagedLookasideList type=0x200 size=0x40 tag=0x784E614C */
    ExInitializePagedLookasideList(&g_PagedList, NULL, NULL, 0, 0x80, 'gPaL', 0); /* SITE api=ExInitializePagedLookasideList type=0x0 size=0x80 tag=0x6750614C */
    g_Sink[21] = (PVOID)(ULONG_PTR)ExInitializeLookasideListEx(&g_ListEx, NULL, NULL, NonPagedPoolNx, 0, 0x48, 'xLaL', 0); /* SITE api=ExInitializeLookasideListEx type=0x200 size=0x48 tag=0x784C614C */
}

NOINLINE void OtherAllocators(void)
{
    PVOID p = NULL;
    PHYSICAL_ADDRESS low, high, boundary;

    low.QuadPart = 0;
    high.QuadPart = -1;
    boundary.QuadPart = 0;
    g_Sink[22] = (PVOID)(ULONG_PTR)NdisAllocateMemoryWithTag(&p, 0x100, 'sidN'); /* SITE api=NdisAllocateMemoryWithTag type=- size=0x100 tag=0x7369644E */
    g_Sink[23] = p;
    g_Sink[24] = NdisAllocateMemoryWithTagPriority(NULL, 0x110, 'PsdN', NormalPoolPriority); /* SITE api=NdisAllocateMemoryWithTagPriority type=- size=0x110 tag=0x5073644E */
    g_Sink[25] = (PVOID)(ULONG_PTR)NdisAllocateMemory(&p, 0x120, 0, high); /* SITE api=NdisAllocateMemory type=- size=0x120 tag=- */
    g_Sink[26] = p;
    g_Sink[27] = FltAllocatePoolAlignedWithTag(NULL, NonPagedPoolNx, 0x200, 'AtlF'); /* SITE api=FltAllocatePoolAlignedWithTag type=0x200 size=0x200 tag=0x41746C46 */
    g_Sink[28] = MmAllocateContiguousMemory(0x1000, high); /* SITE api=MmAllocateContiguousMemory type=- size=0x1000 tag=- */
    g_Sink[29] = MmAllocateContiguousMemorySpecifyCache(0x2000, low, high, boundary, MmCached); /* SITE api=MmAllocateContiguousMemorySpecifyCache type=- size=0x2000 tag=- */
    g_Sink[30] = MmAllocateContiguousMemorySpecifyCacheNode(0x3000, low, high, boundary, MmCached, MM_ANY_NODE_OK); /* SITE api=MmAllocateContiguousMemorySpecifyCacheNode type=- size=0x3000 tag=- */
}

NOINLINE void Frees(void)
{
    ExFreePool(g_Sink[16]); /* SITE api=ExFreePool type=- size=- tag=- */
    ExFreePoolWithTag(g_Sink[5], TAG_POOL); /* SITE api=ExFreePoolWithTag type=- size=- tag=0x6C6F6F50 */
    ExFreePoolWithTag(g_Sink[17], 0); /* SITE api=ExFreePoolWithTag type=- size=- tag=0x0 */
    ExFreePoolWithTag(g_Sink[12], 'tsoG'); /* SITE api=ExFreePoolWithTag type=- size=- tag=0x74736F47 */
    ExFreePool2(g_Sink[15], 'N2xE', NULL, 0); /* SITE api=ExFreePool2 type=- size=- tag=0x4E327845 */
}

VOID NTAPI PoolTestUnload(PDRIVER_OBJECT DriverObject)
{
    (void)DriverObject;
    Frees();
}

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    g_DefaultNpType = NonPagedPoolNx;
    DriverObject->DriverUnload = PoolTestUnload;

    WrapperCallerA();
    WrapperCallerB();
    ConditionalAlloc(g_Selector ^ RegistryPath->Length);
    RuntimeTypeAlloc();
    LoopAlloc();
    TagShapes();
    PoolTypeShapes();
    LegacyAllocators();
    ModernAllocators();
    Lookasides();
    OtherAllocators();
    return STATUS_SUCCESS;
}
