//! Host tool: reads a Microkit 2.3.0 system description (system.xml), validates it and packs the monitor, the PD ELFs and a boot plan into one bootable image.
