/*
 * mini_ntddk.h - the few kernel declarations the drvaudit fixtures need.
 *
 * Written for these fixtures; used by every build (mingw-w64 gcc for x86/x64 and
 * clang --target=*-pc-windows-msvc for x86/x64/arm64), so one source compiles the
 * same way everywhere. Only what the fixtures call is declared. Values follow the
 * public WDK documentation (pool types, POOL_FLAGS, calling conventions).
 *
 * Define FIXTURE_NO_DLLIMPORT before including this header to declare the imports
 * without __declspec(dllimport): calls then go through a linker-made import thunk
 * (call rel32 -> jmp [IAT]), the shape seen in Wine's mingw-built drivers.
 */
#ifndef FIXTURE_MINI_NTDDK_H
#define FIXTURE_MINI_NTDDK_H

#if defined(__i386__) || defined(_M_IX86)
#define NTAPI __stdcall
#else
#define NTAPI
#endif

#ifdef FIXTURE_NO_DLLIMPORT
#define NTKERNELAPI
#else
#define NTKERNELAPI __declspec(dllimport)
#endif

#if defined(__clang__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE __attribute__((noinline, noipa))
#endif

#define NULL ((void *)0)

typedef void VOID, *PVOID;
typedef unsigned char UCHAR, BOOLEAN;
typedef short SHORT;
typedef unsigned short USHORT;
typedef __WCHAR_TYPE__ WCHAR;
typedef long LONG, NTSTATUS;
typedef unsigned long ULONG, *PULONG;
typedef unsigned int UINT;
typedef long long LONGLONG;
typedef unsigned long long ULONG64;
typedef __SIZE_TYPE__ SIZE_T;
typedef __UINTPTR_TYPE__ ULONG_PTR;
typedef PVOID NDIS_HANDLE, PFLT_INSTANCE;
typedef int NDIS_STATUS;

typedef union _LARGE_INTEGER {
    struct {
        ULONG LowPart;
        LONG HighPart;
    } u;
    LONGLONG QuadPart;
} LARGE_INTEGER, PHYSICAL_ADDRESS, NDIS_PHYSICAL_ADDRESS;

typedef struct _UNICODE_STRING {
    USHORT Length;
    USHORT MaximumLength;
    WCHAR *Buffer;
} UNICODE_STRING, *PUNICODE_STRING;

typedef struct _LIST_ENTRY {
    struct _LIST_ENTRY *Flink, *Blink;
} LIST_ENTRY;

struct _DRIVER_OBJECT;
typedef VOID NTAPI DRIVER_UNLOAD(struct _DRIVER_OBJECT *DriverObject);

/* Layout up to DriverUnload: +0x68 on x64/arm64, +0x34 on x86. */
typedef struct _DRIVER_OBJECT {
    SHORT Type;
    SHORT Size;
    PVOID DeviceObject;
    ULONG Flags;
    PVOID DriverStart;
    ULONG DriverSize;
    PVOID DriverSection;
    PVOID DriverExtension;
    UNICODE_STRING DriverName;
    PUNICODE_STRING HardwareDatabase;
    PVOID FastIoDispatch;
    PVOID DriverInit;
    PVOID DriverStartIo;
    DRIVER_UNLOAD *DriverUnload;
    PVOID MajorFunction[28];
} DRIVER_OBJECT, *PDRIVER_OBJECT;

#define STATUS_SUCCESS ((NTSTATUS)0)
#define STATUS_INSUFFICIENT_RESOURCES ((NTSTATUS)0xC000009AL)

typedef enum _POOL_TYPE {
    NonPagedPool = 0,
    NonPagedPoolExecute = 0,
    PagedPool = 1,
    NonPagedPoolMustSucceed = 2,
    DontUseThisType = 3,
    NonPagedPoolCacheAligned = 4,
    PagedPoolCacheAligned = 5,
    NonPagedPoolCacheAlignedMustS = 6,
    NonPagedPoolNx = 0x200,
    NonPagedPoolNxCacheAligned = 0x204,
} POOL_TYPE;

#define POOL_QUOTA_FAIL_INSTEAD_OF_RAISE 0x8
#define POOL_RAISE_IF_ALLOCATION_FAILURE 0x10
#define POOL_NX_ALLOCATION 0x200

typedef ULONG64 POOL_FLAGS;
#define POOL_FLAG_USE_QUOTA         0x0000000000000001ULL
#define POOL_FLAG_UNINITIALIZED     0x0000000000000002ULL
#define POOL_FLAG_CACHE_ALIGNED     0x0000000000000008ULL
#define POOL_FLAG_RAISE_ON_FAILURE  0x0000000000000020ULL
#define POOL_FLAG_NON_PAGED         0x0000000000000040ULL
#define POOL_FLAG_NON_PAGED_EXECUTE 0x0000000000000080ULL
#define POOL_FLAG_PAGED             0x0000000000000100ULL

typedef enum _EX_POOL_PRIORITY {
    LowPoolPriority = 0,
    NormalPoolPriority = 16,
    HighPoolPriority = 32,
} EX_POOL_PRIORITY;

typedef enum _POOL_EXTENDED_PARAMETER_TYPE {
    PoolExtendedParameterInvalidType = 0,
    PoolExtendedParameterPriority = 1,
} POOL_EXTENDED_PARAMETER_TYPE;

typedef struct _POOL_EXTENDED_PARAMETER {
    ULONG64 Type : 8;
    ULONG64 Optional : 1;
    ULONG64 Reserved : 55;
    union {
        ULONG64 Reserved2;
        EX_POOL_PRIORITY Priority;
    } u;
} POOL_EXTENDED_PARAMETER;
typedef const POOL_EXTENDED_PARAMETER *PCPOOL_EXTENDED_PARAMETER;

typedef enum _MEMORY_CACHING_TYPE {
    MmNonCached = 0,
    MmCached = 1,
    MmWriteCombined = 2,
} MEMORY_CACHING_TYPE;
typedef ULONG NODE_REQUIREMENT;
#define MM_ANY_NODE_OK 0x80000000

typedef enum _EVENT_TYPE {
    NotificationEvent = 0,
    SynchronizationEvent = 1,
} EVENT_TYPE;

typedef struct _KEVENT {
    LONG Header[2];
    LIST_ENTRY WaitListHead;
} KEVENT, *PRKEVENT;

/* Opaque, large enough for the real structures on every architecture. */
typedef struct _NPAGED_LOOKASIDE_LIST {
    ULONG64 Opaque[24];
} NPAGED_LOOKASIDE_LIST, PAGED_LOOKASIDE_LIST, LOOKASIDE_LIST_EX;
typedef PVOID NTAPI ALLOCATE_FUNCTION(POOL_TYPE PoolType, SIZE_T NumberOfBytes, ULONG Tag);
typedef VOID NTAPI FREE_FUNCTION(PVOID Buffer);
typedef PVOID NTAPI ALLOCATE_FUNCTION_EX(POOL_TYPE PoolType, SIZE_T NumberOfBytes, ULONG Tag,
                                         LOOKASIDE_LIST_EX *Lookaside);
typedef VOID NTAPI FREE_FUNCTION_EX(PVOID Buffer, LOOKASIDE_LIST_EX *Lookaside);

/* ntoskrnl.exe */
NTKERNELAPI PVOID NTAPI ExAllocatePool(POOL_TYPE PoolType, SIZE_T NumberOfBytes);
NTKERNELAPI PVOID NTAPI ExAllocatePoolWithQuota(POOL_TYPE PoolType, SIZE_T NumberOfBytes);
NTKERNELAPI PVOID NTAPI ExAllocatePoolWithTag(POOL_TYPE PoolType, SIZE_T NumberOfBytes, ULONG Tag);
NTKERNELAPI PVOID NTAPI ExAllocatePoolWithQuotaTag(POOL_TYPE PoolType, SIZE_T NumberOfBytes, ULONG Tag);
NTKERNELAPI PVOID NTAPI ExAllocatePoolWithTagPriority(POOL_TYPE PoolType, SIZE_T NumberOfBytes, ULONG Tag,
                                                      EX_POOL_PRIORITY Priority);
NTKERNELAPI PVOID NTAPI ExAllocatePool2(POOL_FLAGS Flags, SIZE_T NumberOfBytes, ULONG Tag);
NTKERNELAPI PVOID NTAPI ExAllocatePool3(POOL_FLAGS Flags, SIZE_T NumberOfBytes, ULONG Tag,
                                        PCPOOL_EXTENDED_PARAMETER ExtendedParameters, ULONG Count);
NTKERNELAPI VOID NTAPI ExFreePool(PVOID P);
NTKERNELAPI VOID NTAPI ExFreePoolWithTag(PVOID P, ULONG Tag);
NTKERNELAPI VOID NTAPI ExFreePool2(PVOID P, ULONG Tag, PCPOOL_EXTENDED_PARAMETER ExtendedParameters,
                                   ULONG Count);
NTKERNELAPI VOID NTAPI ExInitializeNPagedLookasideList(NPAGED_LOOKASIDE_LIST *Lookaside,
                                                       ALLOCATE_FUNCTION *Allocate, FREE_FUNCTION *Free,
                                                       ULONG Flags, SIZE_T Size, ULONG Tag, USHORT Depth);
NTKERNELAPI VOID NTAPI ExInitializePagedLookasideList(PAGED_LOOKASIDE_LIST *Lookaside,
                                                      ALLOCATE_FUNCTION *Allocate, FREE_FUNCTION *Free,
                                                      ULONG Flags, SIZE_T Size, ULONG Tag, USHORT Depth);
NTKERNELAPI NTSTATUS NTAPI ExInitializeLookasideListEx(LOOKASIDE_LIST_EX *Lookaside,
                                                       ALLOCATE_FUNCTION_EX *Allocate, FREE_FUNCTION_EX *Free,
                                                       POOL_TYPE PoolType, ULONG Flags, SIZE_T Size,
                                                       ULONG Tag, USHORT Depth);
NTKERNELAPI PVOID NTAPI MmAllocateContiguousMemory(SIZE_T NumberOfBytes, PHYSICAL_ADDRESS HighestAcceptableAddress);
NTKERNELAPI PVOID NTAPI MmAllocateContiguousMemorySpecifyCache(SIZE_T NumberOfBytes, PHYSICAL_ADDRESS Lowest,
                                                               PHYSICAL_ADDRESS Highest,
                                                               PHYSICAL_ADDRESS BoundaryMultiple,
                                                               MEMORY_CACHING_TYPE CacheType);
NTKERNELAPI PVOID NTAPI MmAllocateContiguousMemorySpecifyCacheNode(SIZE_T NumberOfBytes, PHYSICAL_ADDRESS Lowest,
                                                                   PHYSICAL_ADDRESS Highest,
                                                                   PHYSICAL_ADDRESS BoundaryMultiple,
                                                                   MEMORY_CACHING_TYPE CacheType,
                                                                   NODE_REQUIREMENT PreferredNode);
NTKERNELAPI VOID NTAPI KeInitializeEvent(PRKEVENT Event, EVENT_TYPE Type, BOOLEAN State);
NTKERNELAPI int __cdecl _wcsnicmp(const WCHAR *String1, const WCHAR *String2, SIZE_T Count);

/* ndis.sys */
NTKERNELAPI NDIS_STATUS NTAPI NdisAllocateMemory(PVOID *VirtualAddress, UINT Length, UINT MemoryFlags,
                                                 NDIS_PHYSICAL_ADDRESS HighestAcceptableAddress);
NTKERNELAPI NDIS_STATUS NTAPI NdisAllocateMemoryWithTag(PVOID *VirtualAddress, UINT Length, ULONG Tag);
NTKERNELAPI PVOID NTAPI NdisAllocateMemoryWithTagPriority(NDIS_HANDLE NdisHandle, UINT Length, ULONG Tag,
                                                          EX_POOL_PRIORITY Priority);

/* fltmgr.sys */
NTKERNELAPI PVOID NTAPI FltAllocatePoolAlignedWithTag(PFLT_INSTANCE Instance, POOL_TYPE PoolType,
                                                      SIZE_T NumberOfBytes, ULONG Tag);

#endif /* FIXTURE_MINI_NTDDK_H */
