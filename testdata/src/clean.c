/*
 * clean.c - a well-behaved driver: one ExAllocatePool2 with POOL_FLAG_NON_PAGED
 * (non-executable) and a printable, non-default tag, freed with the same tag.
 * It should produce no pool findings. Markers: see pooltest.c.
 */
#include "mini_ntddk.h"

#define CLEAN_TAG 'nlCc' /* 0x6E6C4363, shown "cCln" */

void *volatile g_Buffer;

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
