# meshlift A/B boot script for U-Boot (compile with `mkimage -T script -d boot.cmd boot.scr`, or
# paste the setenv lines into the board's default environment, CONFIG_EXTRA_ENV_SETTINGS).
#
# Needs U-Boot built with CONFIG_BOOTCOUNT_LIMIT and CONFIG_BOOTCOUNT_ENV (the boot counter in
# the environment, saved at each boot while upgrade_available=1), a hardware watchdog enabled
# early (CONFIG_WDT / CONFIG_WATCHDOG_TIMEOUT_MSECS) so a hung kernel resets the board, and a
# redundant environment (CONFIG_SYS_REDUNDAND_ENVIRONMENT).
#
# Variables the minion writes (fw_setenv, one atomic write each time):
#   meshlift_active     a|b  the confirmed slot; altbootcmd returns to it
#   meshlift_boot       a|b  the slot bootcmd boots (the standby while a trial is armed)
#   upgrade_available   1 while a trial is armed; the minion clears it when its trial boot starts
#   bootcount           0 at commit; U-Boot increments it at each boot while upgrade_available=1
#   meshlift_confirmed_a/_b, meshlift_attempt, meshlift_failed_0.._3: the minion's own records

# Past this many boots of an armed trial U-Boot runs altbootcmd instead of bootcmd.
setenv bootlimit 3

# Slot a is partition 2, slot b partition 3 (match [slots] a/b in the minion's config).
setenv meshlift_select 'if test "${meshlift_boot}" = "b"; then setenv meshlift_part 3; else setenv meshlift_boot a; setenv meshlift_part 2; fi'

# meshlift.slot= tells the minion which slot it runs from (a restart of the minion is not a boot).
setenv meshlift_args 'setenv bootargs console=${console} root=/dev/mmcblk0p${meshlift_part} rootwait ro meshlift.slot=${meshlift_boot}'

setenv meshlift_load 'load mmc 0:${meshlift_part} ${kernel_addr_r} /boot/Image; load mmc 0:${meshlift_part} ${fdt_addr_r} /boot/${fdtfile}; booti ${kernel_addr_r} - ${fdt_addr_r}'

setenv bootcmd 'run meshlift_select; run meshlift_args; run meshlift_load'

# The trial slot was booted bootlimit times without the minion taking over (a hang before it
# started): return to the confirmed slot, SAVE (the minion reads meshlift_boot/upgrade_available
# to tell a fallback), then boot it. The minion reports the fallback once it runs.
setenv altbootcmd 'setenv meshlift_boot ${meshlift_active}; setenv upgrade_available 0; saveenv; run bootcmd'

# Do NOT set meshlift_active here: its absence tells the minion's first start to adopt the
# factory image in slot a (check its bytes, record it) and write the meshlift variables.
saveenv
