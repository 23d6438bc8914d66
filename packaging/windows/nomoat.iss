; Inno Setup 6 script: NoMoat's Windows installer, made from the one-folder build.
;
;   python packaging\build.py
;   iscc /DAppVersion=0.1.0 packaging\windows\nomoat.iss
;
; writes dist\nomoat-<version>-windows-x86_64-setup.exe. It installs for the current user
; without administrator rights (or for everyone, if the user picks that), adds NoMoat to the
; Start menu, and registers a clean uninstaller. The user's models, chats and settings live in
; %LOCALAPPDATA%\NoMoat and stay when NoMoat is uninstalled.

#ifndef AppVersion
  #error Pass the version: iscc /DAppVersion=0.1.0 packaging\windows\nomoat.iss
#endif

[Setup]
AppId={{6F0D7C1E-3B8A-4E52-9C7D-2A1F5B9E8C40}
AppName=NoMoat
AppVersion={#AppVersion}
AppVerName=NoMoat {#AppVersion}
AppPublisher=NoMoat
DefaultDirName={autopf}\NoMoat
DefaultGroupName=NoMoat
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
OutputDir=..\..\dist
OutputBaseFilename=nomoat-{#AppVersion}-windows-x86_64-setup
SetupIconFile=..\..\resources\nomoat.ico
UninstallDisplayIcon={app}\NoMoat.exe
UninstallDisplayName=NoMoat
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
CloseApplications=yes

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
Source: "..\..\dist\nomoat\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\NoMoat"; Filename: "{app}\NoMoat.exe"
Name: "{autodesktop}\NoMoat"; Filename: "{app}\NoMoat.exe"; Tasks: desktopicon

[Run]
Filename: "{app}\NoMoat.exe"; Description: "{cm:LaunchProgram,NoMoat}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; Python may write bytecode caches next to the program; they go with it.
Type: filesandordirs; Name: "{app}\_internal\__pycache__"
